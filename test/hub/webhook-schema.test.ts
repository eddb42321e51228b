import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseHubWebhook } from "../../src/hub/webhook-schema.js";

const dir = new URL("../fixtures/hub-payloads/", import.meta.url);

describe("parseHubWebhook", () => {
  it.each(readdirSync(dir).filter((name) => name.endsWith(".json")))("accepts the sample %s", (name) => {
    const parsed = parseHubWebhook(JSON.parse(readFileSync(new URL(name, dir), "utf8")));
    expect(parsed.ok).toBe(true);
  });

  it("rejects a known event with a malformed field, naming it", () => {
    const payload = JSON.parse(readFileSync(new URL("repo-content-main-push.json", dir), "utf8")) as { updatedRefs: unknown };
    payload.updatedRefs = "main";
    expect(parseHubWebhook(payload)).toEqual({ ok: false, reason: "updatedRefs: Invalid input: expected array, received string" });
  });
});
