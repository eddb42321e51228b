import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createBotContext, queuePath } from "../../src/app/create-bot-context.js";
import { loadBotConfig } from "../../src/config/bot-config.js";
import { loadEnv } from "../../src/config/env.js";
import { forgeRegistry, type Forge } from "../../src/forge/forge.js";
import type { HubAccess } from "../../src/hub/hub-access.js";
import { BullMqJobQueue } from "../../src/queue/bullmq-queue.js";
import { deleteRedisPrefix, testRedisPrefix, testRedisUrl } from "../helpers/redis.js";

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

  it("gives the worker warm pairs within SAFE_LORA_WARM_PAIRS_MB, and none at 0", async () => {
    for (const [mb, expected] of [["512", { maxBytes: 512e6 }], ["0", null], [undefined, { maxBytes: 2048e6 }]] as const) {
      const env = loadEnv({ DATA_DIR: join(work, `data-${mb}`), LOG_LEVEL: "silent", ...(mb === undefined ? {} : { SAFE_LORA_WARM_PAIRS_MB: mb }) });
      const context = await createBotContext(env, { forges: forgeRegistry([fakeForge]), hub: silentHub, cache: null });
      try {
        expect(context.warmPairs).toEqual(expected);
      } finally {
        await context.queue.close();
      }
    }
  });

  it("says clearly when QUEUE_URL's Redis does not answer, without printing its password", async () => {
    // A port nothing listens on: the connection is refused at once.
    const env = loadEnv({ DATA_DIR: join(work, "data"), QUEUE_URL: "redis://user:secret@127.0.0.1:1" });
    const refused = createBotContext(env, { forges: forgeRegistry([fakeForge]), hub: silentHub });
    await expect(refused).rejects.toMatchObject({ code: "queue-unavailable" });
    await expect(refused).rejects.toThrow(/^QUEUE_URL: could not connect to the queue's Redis at redis:\/\/…@127\.0\.0\.1:1: .*; start Redis there, or unset QUEUE_URL for the embedded queue$/);
    await expect(refused).rejects.not.toThrow(/secret/);
  });

  it("refuses a QUEUE_URL that is not a Redis URL before connecting anywhere", () => {
    expect(() => loadEnv({ QUEUE_URL: "postgres://user:secret@db/queue" })).toThrow(
      "environment variable QUEUE_URL: must be a redis:// or rediss:// URL (or unset, for the embedded queue)",
    );
  });

  it("opens BullMQ and keeps the bot's memory in the same Redis when QUEUE_URL is set; nothing in DATA_DIR", async () => {
    const prefix = testRedisPrefix("context");
    const env = loadEnv({ DATA_DIR: join(work, "data"), QUEUE_URL: testRedisUrl(), SAFE_LORA_QUEUE_PREFIX: prefix, LOG_LEVEL: "silent" });
    const first = await createBotContext(env, { forges: forgeRegistry([fakeForge]), hub: silentHub, cache: null });
    const second = await createBotContext(env, { forges: forgeRegistry([fakeForge]), hub: silentHub, cache: null });
    try {
      expect(first.queue).toBeInstanceOf(BullMqJobQueue);
      await first.memory.stop({ forge: "hub", repo: "acme/x", folder: "." });
      await first.memory.noteCoveredOwner({ forge: "hub", owner: "Acme" });
      const { job } = await first.queue.enqueue({ key: "k", kind: "scan", forge: "hub", repo: "acme/x", private: false, payload: {} });
      // Another process (another machine) sees the same jobs and the same memory.
      expect(await second.queue.get(job.id)).toMatchObject({ key: "k", state: "queued" });
      expect(await second.memory.isStopped({ forge: "hub", repo: "acme/x", folder: "." })).toBe(true);
      expect(await second.memory.isStopped({ forge: "github", repo: "acme/x", folder: "." })).toBe(false);
      expect(await second.memory.hasCoveredOwner({ forge: "hub", owner: "acme" })).toBe(true);
      expect(existsSync(join(work, "data", "safe-lora.db"))).toBe(false);
    } finally {
      await first.queue.close();
      await second.queue.close();
      await deleteRedisPrefix(prefix);
    }
  });
});
