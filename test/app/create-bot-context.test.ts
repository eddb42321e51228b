import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createBotContext, queuePath } from "../../src/app/create-bot-context.js";
import { loadBotConfig } from "../../src/config/bot-config.js";
import { loadEnv } from "../../src/config/env.js";
import { forgeRegistry, type Forge } from "../../src/forge/forge.js";
import type { HubAccess } from "../../src/hub/hub-access.js";

let work: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), "safe-lora-context-"));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

/** A Hub that must not be called: building a context with an injected forge reads nothing from it. */
const silentHub: HubAccess = {
  hubUrl: "https://hub.invalid",
  fetch: () => {
    throw new Error("the Hub was called");
  },
};
const fakeForge = { name: "hub", bot: { id: "bot-id", name: "test-bot" } } as unknown as Forge;

describe("createBotContext", () => {
  it("uses the forge and Hub access it is given, and builds the rest from the environment", async () => {
    const env = loadEnv({ DATA_DIR: join(work, "data"), LOG_LEVEL: "silent", SAFE_LORA_EP: "cpu" });
    const context = await createBotContext(env, { forges: forgeRegistry([fakeForge]), hub: silentHub, tokenEnv: {} });
    try {
      expect(context.forges.get("hub")).toBe(fakeForge);
      expect(context.hub).toBe(silentHub);
      expect(existsSync(queuePath(env))).toBe(true);
      expect(await context.queue.counts()).toMatchObject({ queued: 0, running: 0 });
      expect(context.cache).not.toBeNull();
      expect(context.executionProvider).toBe("cpu");
      expect(context.config).toEqual(loadBotConfig(undefined));
    } finally {
      await context.queue.close();
    }
  });

  it("takes the Hub token from the environment it is given, never from a parsed config", async () => {
    const env = loadEnv({ DATA_DIR: join(work, "data"), LOG_LEVEL: "silent", HF_ENDPOINT: "https://hub.example" });
    const context = await createBotContext(env, { forges: forgeRegistry([fakeForge]), tokenEnv: { HF_TOKEN: "hf_from_env" }, cache: null });
    try {
      expect(context.hub).toEqual({ hubUrl: "https://hub.example", accessToken: "hf_from_env" });
      expect(context.cache).toBeNull();
    } finally {
      await context.queue.close();
    }
  });

  it("refuses QUEUE_URL clearly, without printing its password", async () => {
    const env = loadEnv({ DATA_DIR: join(work, "data"), QUEUE_URL: "redis://user:secret@redis:6379" });
    await expect(createBotContext(env, { forges: forgeRegistry([fakeForge]), hub: silentHub })).rejects.toMatchObject({
      code: "usage",
      message: "QUEUE_URL=redis://…@redis:6379: only the embedded SQLite queue is available in this version; unset QUEUE_URL",
    });
  });
});
