import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBot, type RunningBot } from "../../src/app/start-bot.js";
import { loadEnv } from "../../src/config/env.js";
import { BotWorld } from "../helpers/bot-world.js";
import { deleteRedisPrefix, testRedisPrefix, testRedisUrl } from "../helpers/redis.js";
import { pushWide, seedWidePair } from "../helpers/wide-adapter.js";

/**
 * BullMQ renews a job's lock from the event loop. A patch several times longer than the lock (64 modules, two of them
 * 4096 × 4096, about 3 s against a 0.5 s lock) must stay with the worker that took it while a second worker waits for jobs:
 * the projection runs in a worker thread, so the renewals keep coming.
 */

const prefix = testRedisPrefix("long-job");
const extra = { QUEUE_URL: testRedisUrl(), SAFE_LORA_QUEUE_PREFIX: prefix, SAFE_LORA_JOB_LEASE_SECONDS: "0.5" };
let world: BotWorld;
let second: RunningBot;
let adapterFiles: Record<string, Buffer>;
beforeAll(async () => {
  world = await BotWorld.create();
  adapterFiles = await seedWidePair(world);
  await world.startBot(extra);
  // A second worker on the same queue, with its own DATA_DIR, ready to take any job whose lock runs out.
  const env = world.env({ ...extra, DATA_DIR: join(world.work, "second-worker") });
  second = await startBot({ env: loadEnv(env), server: false, worker: true, overrides: { tokenEnv: env } });
}, 120_000);
afterAll(async () => {
  await second?.stop();
  await world?.close();
  await deleteRedisPrefix(prefix);
});

describe("a BullMQ job that runs many times longer than its lock", () => {
  it("is run once, by one worker, with one commit", { timeout: 300_000 }, async () => {
    await pushWide(world, adapterFiles);
    const started = Date.now();
    await world.idle(240_000);
    const tookMs = Date.now() - started;
    const jobs = await world.bot!.context.queue.recent(10);
    const patch = jobs.find((job) => job.kind === "patch");
    expect(patch).toMatchObject({ state: "done", attempts: 1, result: { outcome: "committed", modules: 64 } });
    // The run outlasted its lock at least twice over (about 3 s against 0.5 s here), or the test proves nothing.
    expect(tookMs).toBeGreaterThan(2 * 500);
    expect(jobs.every((job) => job.state === "done" && job.attempts === 1)).toBe(true);
    const [pr] = world.pullRequests();
    expect(world.pullRequests()).toHaveLength(1);
    expect(world.prCommits(pr!.num)).toHaveLength(1);
  });
});
