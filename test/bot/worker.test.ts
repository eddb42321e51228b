import { pino } from "pino";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { BotContext } from "../../src/bot/context.js";
import { BotMetrics } from "../../src/bot/metrics.js";
import { Worker } from "../../src/bot/worker.js";
import { SqliteJobQueue } from "../../src/queue/sqlite-queue.js";
import { createBotServer } from "../../src/server/http-server.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Just what the worker and the health route touch; jobs that get past the payload check would need more. */
function contextWith(queue: SqliteJobQueue): BotContext {
  return {
    queue,
    log: pino({ level: "silent" }),
    metrics: new BotMetrics(queue),
    config: { limits: { maxRunMinutes: 1 } },
    forge: { bot: { id: "bot-id", name: "safe-lora-bot" } },
  } as unknown as BotContext;
}

/** Polls until `done`; a generous deadline only turns a hang into a readable failure. */
async function until<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (const deadline = Date.now() + 10_000; ; ) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("Worker and damaged jobs", () => {
  it("fails a stored job whose payload does not read as its kind at once, without retries", async () => {
    const queue = new SqliteJobQueue(":memory:");
    cleanups.push(() => queue.close());
    const { job } = await queue.enqueue({ key: "k", kind: "patch", forge: "hub", repo: "acme/x", private: false, payload: { repo: "acme/x", folder: 7 } });
    const worker = new Worker(contextWith(queue), { leaseMs: 60_000, pollMs: 10, retryBaseMs: 3_600_000 });
    worker.start();
    cleanups.push(() => worker.stop());
    const failed = await until(() => queue.get(job.id), (j) => j?.state === "failed");
    expect(failed).toMatchObject({ attempts: 1, error: expect.stringMatching(/^the stored job is damaged \(.*\); push or comment again/) });
  });

  it("/healthz answers 503 while claims fail, and 200 again once they work", async () => {
    const queue = new SqliteJobQueue(":memory:");
    cleanups.push(() => queue.close());
    const server = createBotServer(contextWith(queue), { webhookSecret: "s", statusToken: undefined });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const healthz = () => fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`);
    expect((await healthz()).status).toBe(200);
    queue.db.exec("ALTER TABLE jobs RENAME TO jobs_gone");
    await expect(queue.claim("w", 1000)).rejects.toThrow();
    const unhealthy = await healthz();
    expect(unhealthy.status).toBe(503);
    expect(await unhealthy.json()).toMatchObject({ status: "unhealthy", reason: expect.stringMatching(/claiming jobs fails/) });
    queue.db.exec("ALTER TABLE jobs_gone RENAME TO jobs");
    await queue.claim("w", 1000);
    expect((await healthz()).status).toBe(200);
  });
});
