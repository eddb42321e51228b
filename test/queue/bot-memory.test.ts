import { afterAll, describe, expect, it } from "vitest";
import type { BotMemory } from "../../src/queue/bot-memory.js";
import { BullMqJobQueue } from "../../src/queue/bullmq-queue.js";
import { RedisBotMemory } from "../../src/queue/redis-bot-memory.js";
import { SqliteBotMemory } from "../../src/queue/sqlite-bot-memory.js";
import { SqliteJobQueue } from "../../src/queue/sqlite-queue.js";
import { deleteRedisPrefix, testRedisPrefix, testRedisUrl } from "../helpers/redis.js";

const closers: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const close of closers.splice(0)) await close();
});

/** What both memories must do: the SQLite file's and Redis's. */
function describeBotMemory(name: string, make: () => Promise<BotMemory>): void {
  describe(`the bot's memory: ${name}`, () => {
    it("stops and starts adapters, per forge", async () => {
      const memory = await make();
      await memory.stop({ forge: "hub", repo: "acme/x", folder: "a" });
      expect(await memory.isStopped({ forge: "hub", repo: "acme/x", folder: "a" })).toBe(true);
      expect(await memory.isStopped({ forge: "github", repo: "acme/x", folder: "a" })).toBe(false);
      expect(await memory.isStopped({ forge: "hub", repo: "acme/x", folder: "b" })).toBe(false);
      await memory.start({ forge: "hub", repo: "acme/x", folder: "a" });
      expect(await memory.isStopped({ forge: "hub", repo: "acme/x", folder: "a" })).toBe(false);
    });

    it("remembers covered owners whatever their case", async () => {
      const memory = await make();
      await memory.noteCoveredOwner({ forge: "github", owner: "Acme" });
      expect(await memory.hasCoveredOwner({ forge: "github", owner: "acme" })).toBe(true);
      expect(await memory.hasCoveredOwner({ forge: "hub", owner: "acme" })).toBe(false);
    });

    it("keeps what an app was removed from (repos and whole accounts) until it is installed there again", async () => {
      const memory = await make();
      await memory.uninstall({ forge: "github", names: ["Acme/One", "rival"] });
      expect(await memory.isUninstalled({ forge: "github", repo: "acme/one" })).toBe(true);
      expect(await memory.isUninstalled({ forge: "github", repo: "acme/two" })).toBe(false);
      // An account removed: every repo of it.
      expect(await memory.isUninstalled({ forge: "github", repo: "rival/any" })).toBe(true);
      expect(await memory.isUninstalled({ forge: "hub", repo: "acme/one" })).toBe(false);
      await memory.reinstall({ forge: "github", names: ["acme/one", "Rival"] });
      expect(await memory.isUninstalled({ forge: "github", repo: "acme/one" })).toBe(false);
      expect(await memory.isUninstalled({ forge: "github", repo: "rival/any" })).toBe(false);
      await memory.uninstall({ forge: "github", names: [] });
      await memory.reinstall({ forge: "github", names: [] });
    });
  });
}

describeBotMemory("SQLite", async () => {
  const queue = new SqliteJobQueue(":memory:");
  closers.push(() => queue.close());
  return new SqliteBotMemory(queue.db, queue.now);
});

describeBotMemory("Redis", async () => {
  const prefix = testRedisPrefix("memory");
  const queue = await BullMqJobQueue.connect({ url: testRedisUrl(), prefix });
  closers.push(async () => {
    await queue.close();
    await deleteRedisPrefix(prefix);
  });
  return new RedisBotMemory(queue.redis, queue.key("memory"));
});
