import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { DelayedError, UnrecoverableError, Worker, type Job as BullJob } from "bullmq";
import type { BullMqJobQueue } from "./bullmq-queue.js";
import { jobOf, StoredJobData } from "./bullmq-queue.js";
import { cpuWorker, WORKER_HEARTBEAT_MS, type JobHandler, type JobRunner, type JobVerdict, type RunnerOptions, type RunningJob, type WorkerCapabilities } from "./job-queue.js";
import { runHandler } from "./handler-run.js";
import { RedisRepoLocks } from "./redis-repo-locks.js";
import { workerOptions } from "./redis-connection.js";

/** A retry verdict, thrown so that BullMQ retries the job after the delay it carries. */
class RetryLater extends Error {
  constructor(
    message: string,
    readonly delayMs: number,
  ) {
    super(message);
    this.name = "RetryLater";
  }
}

/**
 * Runs BullMQ jobs one at a time (one at a time per queue: a GPU runner also takes GPU jobs alongside).
 * BullMQ holds each job under a lock it renews from this process's event loop (so the projection must not
 * block it: it runs in a worker thread) and hands a job whose worker died to another once that lock ran out
 * (stalled-job recovery). The runner adds the contract's parts: one running job per repo (a lock in Redis; a
 * job whose repo is busy goes back to the delayed set for `pollMs`), attempts counted as handler starts,
 * retries with the doubling backoff, and supersedes groups.
 */
export class BullMqJobRunner implements JobRunner {
  readonly id = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  private readonly locks: RedisRepoLocks;
  private readonly capabilities: WorkerCapabilities;
  private workers: Worker[] = [];
  private readonly running = new Map<string, AbortController>();
  private advertising: NodeJS.Timeout | null = null;
  private abandoned = false;
  private stopped: Promise<void> | null = null;

  constructor(
    private readonly queue: BullMqJobQueue,
    private readonly options: RunnerOptions,
  ) {
    this.locks = new RedisRepoLocks(queue.redis, queue.key("locks"));
    this.capabilities = options.capabilities ?? cpuWorker();
  }

  private get maxAttempts(): number {
    return this.options.maxAttempts ?? 5;
  }

  start(handler: JobHandler): void {
    if (this.workers.length > 0 || this.stopped) return;
    const names = [this.queue.queues.any.name, ...(this.capabilities.gpu ? [this.queue.queues.gpu.name] : [])];
    const { leaseMs } = this.options;
    this.workers = names.map((name) => {
      const worker = new Worker(name, (job, token) => this.process(job, token, handler), {
        connection: { url: this.queue.options.url, ...workerOptions },
        prefix: this.queue.options.prefix,
        name: this.id,
        concurrency: 1,
        lockDuration: leaseMs,
        // A dead worker's job is looked for as often as its lease runs out, and retaken up to the attempt cap.
        stalledInterval: leaseMs,
        maxStalledCount: this.maxAttempts,
        // Idle workers block on Redis for new jobs; this caps a wait so that delayed jobs are promoted in time.
        drainDelay: Math.max(1, Math.ceil(this.options.pollMs / 1000)),
        settings: { backoffStrategy: (_attempts, _type, error) => (error instanceof RetryLater ? error.delayMs : this.options.retryBaseMs) },
      });
      worker.on("error", (error) => {
        if (!this.abandoned) this.options.log?.error({ err: error }, "the BullMQ worker reported an error");
      });
      // BullMQ could not renew a job's lock: another worker may take it, so this one stops working on it.
      worker.on("lockRenewalFailed", (ids: string[]) => {
        for (const id of ids) this.running.get(id)?.abort(new Error("the job's lock was lost to another worker"));
      });
      // Counted once BullMQ stored the completion (a crash just before it leaves the count one short).
      worker.on("completed", (_job, result: unknown) => {
        const outcome = result && typeof result === "object" && typeof (result as { outcome?: unknown }).outcome === "string" ? (result as { outcome: string }).outcome : "";
        void this.queue.redis.hincrby(this.queue.key("outcomes"), outcome, 1).catch(() => {});
      });
      return worker;
    });
    const startedAt = Date.now();
    const advertise = () =>
      void this.queue.noteWorker(this.id, this.capabilities, startedAt).catch((error: unknown) => this.options.log?.error({ err: error }, "could not advertise this worker"));
    advertise();
    this.advertising = setInterval(advertise, WORKER_HEARTBEAT_MS);
    this.advertising.unref();
  }

  /** BullMQ's workers wake themselves when a job is added (a marker in Redis): nothing to do. */
  poke(): void {}

  async stop(options: { abandon?: boolean } = {}): Promise<void> {
    if (this.advertising) clearInterval(this.advertising);
    if (options.abandon) {
      this.abandoned = true;
      for (const controller of this.running.values()) controller.abort(new Error("the runner was abandoned; the job is left to its lease"));
      // As a crash would: the running job keeps its lock until it runs out, and another worker takes it then.
      await Promise.allSettled(this.workers.map((worker) => worker.close(true)));
      return;
    }
    this.stopped ??= (async () => {
      // With Redis away a graceful close would wait for it forever (BullMQ's connections retry without end), and
      // no job could be stored as finished anyway: close at once, and leave the running job to its lock.
      const force = !this.queue.health().ok;
      await Promise.allSettled(this.workers.map((worker) => worker.close(force)));
      await this.queue.forgetWorker(this.id).catch(() => {});
    })();
    await this.stopped;
  }

  private async process(bull: BullJob, token: string | undefined, handler: JobHandler): Promise<unknown> {
    const id = bull.id!;
    const parsed = StoredJobData.safeParse(bull.data);
    if (!parsed.success) throw new UnrecoverableError("the stored job is damaged (its data does not read as a job); push or comment again to queue a new one");
    const data = parsed.data;
    const { leaseMs } = this.options;
    const lock = { forge: data.forge, repo: data.repo, owner: `${this.id}/${id}` };
    if (!(await this.locks.acquire({ ...lock, ttlMs: leaseMs }))) {
      // Another job of this repo runs: this one waits its turn, without counting as an attempt.
      await bull.moveToDelayed(Date.now() + this.options.pollMs, token);
      throw new DelayedError();
    }
    let keepLock = false;
    try {
      const meta = this.queue.metaKey(id);
      const now = Date.now();
      const [[, attemptsReply] = []] = (await this.queue.redis.multi().hincrby(meta, "attempts", 1).hset(meta, "startedAt", now).exec()) ?? [];
      const attempts = Number(attemptsReply);
      if (attempts - 1 >= this.maxAttempts) {
        throw new UnrecoverableError(`gave up after ${attempts - 1} attempts; last error: ${bull.failedReason || "the worker stopped while running it"}`);
      }
      const view = jobOf(bull, "active", { attempts: String(attempts), startedAt: String(now), ...(await this.runAfterOf(meta)) });
      const running: RunningJob = {
        ...view,
        retryInMs: attempts >= this.maxAttempts ? null : this.options.retryBaseMs * 2 ** (attempts - 1),
        supersededBy: await this.newerOfGroup(data, id),
      };
      const controller = new AbortController();
      this.running.set(id, controller);
      let verdict: JobVerdict;
      try {
        // BullMQ renews the job's lock itself; the repo's lock is this runner's to renew.
        verdict = await runHandler({ handler, job: running, controller, renew: () => this.locks.renew({ ...lock, ttlMs: leaseMs }), everyMs: leaseMs / 3, log: this.options.log });
      } finally {
        this.running.delete(id);
      }
      if (this.abandoned) {
        // Left as a crash leaves it: the job and its repo's lock run out, and another runner takes the job.
        // Never settling keeps BullMQ from storing anything for it before its forced close is through.
        keepLock = true;
        return await new Promise<never>(() => {});
      }
      switch (verdict.verdict) {
        case "done":
          return verdict.result ?? null;
        case "fail":
          throw new UnrecoverableError(verdict.error);
        case "retry":
          if (running.retryInMs === null) throw new UnrecoverableError(`gave up after ${attempts} attempts; last error: ${verdict.error}`);
          await this.queue.redis.hset(meta, "runAfter", Date.now() + running.retryInMs);
          throw new RetryLater(verdict.error, running.retryInMs);
      }
    } finally {
      if (!keepLock) await this.locks.release(lock).catch(() => {});
    }
  }

  private async runAfterOf(meta: string): Promise<Record<string, string>> {
    const runAfter = await this.queue.redis.hget(meta, "runAfter");
    return runAfter === null ? {} : { runAfter };
  }

  /** The newest job stored after this one in its supersedes group, if it exists. */
  private async newerOfGroup(data: StoredJobData, id: string): Promise<string | null> {
    if (data.supersedes === null) return null;
    const [newest, score] = await this.queue.redis.zrevrange(this.queue.groupKey(data.supersedes), 0, 0, "WITHSCORES");
    if (!newest || newest === id || Number(score) <= data.seq) return null;
    // Listed before it was added (bullmq-queue.ts): an entry whose add never happened supersedes nothing.
    return (await this.queue.get(newest)) ? newest : null;
  }
}
