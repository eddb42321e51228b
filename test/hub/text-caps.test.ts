import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HubRepoFiles } from "../../src/hub/hub-repo-files.js";
import { LocalHub } from "../../src/local-hub/server.js";
import { seedRepo } from "../../src/local-hub/seed.js";
import { MAX_TEXT_BYTES } from "../../src/storage/repo-files.js";

let hub: LocalHub;
beforeEach(async () => {
  hub = await new LocalHub().start();
  await seedRepo(hub, "acme/huge-texts", [
    // 31 MB of YAML blocked the bot's event loop for 26 s; anything over the cap is refused unread.
    { path: "safe-lora.yaml", data: `select: top-k:3\n#${"x".repeat(MAX_TEXT_BYTES)}\n` },
    { path: "adapter_config.json", data: JSON.stringify({ peft_type: "LORA", r: 8 }) },
  ]);
});
afterEach(() => hub.close());

describe("text files read from a Hub repo", () => {
  it("refuses one over the cap from the listing's size, before downloading it, naming the file and the cap", async () => {
    const files = await HubRepoFiles.open({ hubUrl: hub.url }, { id: "acme/huge-texts", revision: "main" });
    const reading = files.readText("safe-lora.yaml");
    await expect(reading).rejects.toMatchObject({ code: "limit-exceeded" });
    await expect(reading).rejects.toThrow(new RegExp(`acme/huge-texts@[0-9a-f]{12}/safe-lora.yaml is ${MAX_TEXT_BYTES + 18} bytes, more than the ${MAX_TEXT_BYTES} bytes read from a text file`));
    expect(hub.bytesServed("acme/huge-texts")).toBe(0);
    expect(files.bytesRead).toBe(0);
    // Small files read as before.
    expect(JSON.parse(await files.readText("adapter_config.json"))).toMatchObject({ peft_type: "LORA" });
  });
});
