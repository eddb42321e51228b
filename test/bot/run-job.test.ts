import { Writable } from "node:stream";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { BotContext } from "../../src/bot/context.js";
import { BotMetrics } from "../../src/bot/metrics.js";
import { jobHandler } from "../../src/bot/run-job.js";
import { SafeLoraError } from "../../src/errors.js";
import { forgeRegistry, type Forge } from "../../src/forge/forge.js";
import type { JobRunner, RunningJob } from "../../src/queue/job-queue.js";
import { SqliteJobQueue } from "../../src/queue/sqlite-queue.js";
import { createBotServer } from "../../src/server/http-server.js";
import { until } from "../helpers/until.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A Hub forge whose every repo call fails with `error` (or a plain one), and a log that keeps its lines. */
function contextWith(queue: SqliteJobQueue, error: unknown = new Error("no forge in this test")): BotContext & { lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const fail = async () => {
    throw error;
  };
  const forge = { name: "hub", bot: { id: "bot-id", name: "safe-lora-bot" }, head: fail, open: fail } as unknown as Forge;
  return {
    queue,
    forges: forgeRegistry([forge]),
    log: pino({ level: "info" }, sink),
    metrics: new BotMetrics(queue),
    config: { limits: { maxRunMinutes: 1 }, excludeRepos: [] },
    memory: { isUninstalled: async ({ repo }: { repo: string }) => repo === "acme/uninstalled" },
    lines,
  } as unknown as BotContext & { lines: string[] };
}

function queued(overrides: Partial<RunningJob> = {}): RunningJob {
  return {
    id: "1",
    key: "k",
    kind: "scan",
    forge: "hub",
    repo: "acme/x",
    private: false,
    payload: { repo: "acme/x", sha: "abc", reason: "push" },
    supersedes: null,
    needs: null,
    state: "running",
    attempts: 1,
    runAfter: 0,
    result: null,
    error: null,
    createdAt: 0,
    startedAt: 0,
    finishedAt: null,
    retryInMs: 1000,
    supersededBy: null,
    ...overrides,
  };
}

async function finished(context: BotContext): Promise<string> {
  return (await context.metrics.registry.getSingleMetricAsString("safe_lora_jobs_finished_total")).split("\n").filter((line) => !line.startsWith("#")).join("\n");
}

describe("the bot's job handler", () => {
  it("fails a stored job whose payload does not read as its kind at once, without retries", async () => {
    const queue = new SqliteJobQueue(":memory:");
    cleanups.push(() => queue.close());
    const { job } = await queue.enqueue({ key: "k", kind: "patch", forge: "hub", repo: "acme/x", private: false, payload: { repo: "acme/x", folder: 7 } });
    const runner: JobRunner = queue.createRunner({ leaseMs: 60_000, pollMs: 10, retryBaseMs: 3_600_000 });
    runner.start(jobHandler(contextWith(queue)));
    cleanups.push(() => runner.stop());
    const failed = await until(() => queue.get(job.id), (j) => j?.state === "failed");
    expect(failed).toMatchObject({ attempts: 1, error: expect.stringMatching(/^the stored job is damaged \(.*\); push or comment again/) });
  });

  it("fails a job of a kind the bot does not have, or on a forge it does not serve, at once", async () => {
    const queue = new SqliteJobQueue(":memory:");
    cleanups.push(() => queue.close());
    const handle = jobHandler(contextWith(queue));
    const signal = new AbortController().signal;
    expect(await handle(queued({ kind: "deploy" }), signal)).toEqual({ verdict: "fail", error: "the stored job is damaged (unknown kind); push or comment again to queue a new one" });
    expect(await handle(queued({ forge: "github" }), signal)).toMatchObject({ verdict: "fail", error: expect.stringMatching(/does not serve the forge "github"/) });
  });

  it("refuses a job on the user's error: done for the queue, with the reason and code, counted as refused", async () => {
    const queue = new SqliteJobQueue(":memory:");
    cleanups.push(() => queue.close());
    const context = contextWith(queue, new SafeLoraError("acme/x: no such repo", "hub-not-found"));
    const verdict = await jobHandler(context)(queued(), new AbortController().signal);
    expect(verdict).toEqual({ verdict: "done", result: { outcome: "refused", reason: "acme/x: no such repo", code: "hub-not-found" } });
    expect(await finished(context)).toBe('safe_lora_jobs_finished_total{kind="scan",outcome="refused"} 1');
  });

  it("refuses, without touching the forge, a job of a repo the bot's app was removed from", async () => {
    const queue = new SqliteJobQueue(":memory:");
    cleanups.push(() => queue.close());
    // The forge would throw a bug if it were called: the refusal must come first.
    const context = contextWith(queue, new TypeError("the forge was called"));
    const verdict = await jobHandler(context)(queued({ forge: "github", repo: "acme/uninstalled", payload: { repo: "acme/uninstalled", sha: "abc", reason: "push" } }), new AbortController().signal);
    expect(verdict).toEqual({
      verdict: "done",
      result: { outcome: "refused", reason: "the bot's app was removed from this repository; install it there again to have its adapters covered", code: "not-installed" },
    });
    expect(await finished(context)).toBe('safe_lora_jobs_finished_total{kind="scan",outcome="refused"} 1');
  });

  it("retries the forge's passing trouble and bugs, and counts the job failed only on its last attempt", async () => {
    const queue = new SqliteJobQueue(":memory:");
    cleanups.push(() => queue.close());
    const busy = contextWith(queue, new SafeLoraError("the Hub answered 503", "hub-unavailable"));
    const signal = new AbortController().signal;
    expect(await jobHandler(busy)(queued(), signal)).toEqual({ verdict: "retry", error: "the Hub answered 503" });
    expect(await finished(busy)).toBe("");
    expect(await jobHandler(busy)(queued({ attempts: 5, retryInMs: null }), signal)).toEqual({ verdict: "retry", error: "the Hub answered 503" });
    expect(await finished(busy)).toBe('safe_lora_jobs_finished_total{kind="scan",outcome="failed"} 1');
    const bug = contextWith(queue, new TypeError("undefined is not a function"));
    expect(await jobHandler(bug)(queued(), signal)).toEqual({ verdict: "retry", error: "undefined is not a function" });
    expect(await bug.metrics.registry.getSingleMetricAsString("safe_lora_job_duration_seconds")).toMatch(/_count\{kind="scan",outcome="error"\} 1/);
  });

  it("fails at once what is the operator's and would fail again (the bot's own database)", async () => {
    const queue = new SqliteJobQueue(":memory:");
    cleanups.push(() => queue.close());
    const context = contextWith(queue, new SafeLoraError("safe-lora.db is damaged", "damaged-state"));
    expect(await jobHandler(context)(queued(), new AbortController().signal)).toEqual({ verdict: "fail", error: "safe-lora.db is damaged" });
    expect(await finished(context)).toBe('safe_lora_jobs_finished_total{kind="scan",outcome="failed"} 1');
  });

  it("never names a private repo in its log lines, not even inside an error's message", async () => {
    const queue = new SqliteJobQueue(":memory:");
    cleanups.push(() => queue.close());
    const secret = "acme/secret-model";
    for (const error of [new SafeLoraError(`${secret}: no such repo`, "hub-not-found"), new Error(`reading ${secret} failed`)]) {
      const context = contextWith(queue, error);
      await jobHandler(context)(queued({ repo: secret, private: true, payload: { repo: secret, sha: "abc", reason: "push" } }), new AbortController().signal);
      expect(context.lines.length).toBeGreaterThanOrEqual(2);
      expect(context.lines.join("")).not.toContain(secret);
      expect(context.lines.join("")).toContain("<private repo>");
    }
  });

  it("/healthz answers 503 while taking jobs fails, and 200 again once it works", async () => {
    const queue = new SqliteJobQueue(":memory:");
    cleanups.push(() => queue.close());
    const context = contextWith(queue);
    const runner = queue.createRunner({ leaseMs: 60_000, pollMs: 10, retryBaseMs: 10 });
    runner.start(jobHandler(context));
    cleanups.push(() => runner.stop());
    const server = createBotServer(context, { webhookSecret: "s", statusToken: undefined });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const healthz = () => fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`);
    expect((await healthz()).status).toBe(200);
    queue.db.exec("ALTER TABLE jobs RENAME TO jobs_gone");
    runner.poke();
    const unhealthy = await until(healthz, (response) => response.status === 503);
    expect(await unhealthy.json()).toMatchObject({ status: "unhealthy", reason: expect.stringMatching(/claiming jobs fails/) });
    queue.db.exec("ALTER TABLE jobs_gone RENAME TO jobs");
    runner.poke();
    expect((await until(healthz, (response) => response.status === 200)).status).toBe(200);
  });
});
