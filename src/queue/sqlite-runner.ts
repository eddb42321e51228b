import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { cpuWorker, WORKER_HEARTBEAT_MS, type Job, type JobHandler, type JobRunner, type JobVerdict, type RepoLocks, type RunnerOptions, type RunningJob, type WorkerCapabilities } from "./job-queue.js";
import { runHandler } from "./handler-run.js";
import { SqliteRepoLocks } from "./sqlite-repo-locks.js";
import { jobOfRow, storedJson, type JobRow } from "./sqlite-job-row.js";
import type { SqliteJobQueue } from "./sqlite-queue.js";

const MAX_TAKE_BACKOFF_MS = 60_000;

export interface SqliteRunnerOptions extends RunnerOptions {
  /** "One job per repo at a time" (default: locks in the queue's file). */
  readonly locks?: RepoLocks;
}

/**
 * Runs the SQLite queue's jobs one at a time, under leases in the same file. At-least-once: a job is done only
 * after its handler said so; a runner that dies leaves a lease that runs out, and the job is taken again.
 */
export class SqliteJobRunner implements JobRunner {
  readonly id = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  private readonly locks: RepoLocks;
  private stopping = false;
  private abandoned = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private current: AbortController | null = null;
  private readonly capabilities: WorkerCapabilities;
  private advertising: NodeJS.Timeout | null = null;

  constructor(
    private readonly queue: SqliteJobQueue,
    private readonly options: SqliteRunnerOptions,
  ) {
    this.locks = options.locks ?? new SqliteRepoLocks(queue.db, queue.now);
    this.capabilities = options.capabilities ?? cpuWorker();
  }

  private get maxAttempts(): number {
    return this.options.maxAttempts ?? 5;
  }

  start(handler: JobHandler): void {
    if (this.loop) return;
    const startedAt = this.queue.now();
    const advertise = () => {
      try {
        this.queue.noteWorker(this.id, this.capabilities, startedAt);
      } catch (error) {
        this.options.log?.error({ err: error }, "could not advertise this worker");
      }
    };
    advertise();
    this.advertising = setInterval(advertise, WORKER_HEARTBEAT_MS);
    this.advertising.unref();
    this.loop = this.run(handler).catch((error: unknown) => {
      // Only after `stop({ abandon })`, when the file may be closed under a job that is left to its lease.
      if (!this.abandoned) throw error;
    });
  }

  poke(): void {
    this.wake?.();
  }

  async stop(options: { abandon?: boolean } = {}): Promise<void> {
    this.stopping = true;
    if (this.advertising) clearInterval(this.advertising);
    if (options.abandon) {
      this.abandoned = true;
      this.current?.abort(new Error("the runner was abandoned; the job is left to its lease"));
    }
    this.wake?.();
    if (!options.abandon) {
      await this.loop;
      this.queue.forgetWorker(this.id);
    }
  }

  private async run(handler: JobHandler): Promise<void> {
    let failedTakes = 0;
    while (!this.stopping) {
      let job: Job | null = null;
      try {
        job = await this.take();
        failedTakes = 0;
        this.queue.noteTake(null);
      } catch (error) {
        failedTakes++;
        this.queue.noteTake(error instanceof Error ? error.message : String(error));
        this.options.log?.error({ err: error, failedClaims: failedTakes }, "could not claim a job; /healthz reports it");
      }
      if (this.abandoned) return;
      if (!job) {
        // While taking fails (a damaged database), wait longer each time, up to a minute, rather than logging
        // the same error several times a second forever.
        const { pollMs } = this.options;
        const wait = failedTakes === 0 ? pollMs : Math.min(MAX_TAKE_BACKOFF_MS, pollMs * 2 ** failedTakes);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
        continue;
      }
      await this.runOne(job, handler);
    }
  }

  private async runOne(job: Job, handler: JobHandler): Promise<void> {
    const controller = new AbortController();
    this.current = controller;
    const lock = { forge: job.forge, repo: job.repo, owner: this.id };
    const running: RunningJob = {
      ...job,
      retryInMs: job.attempts >= this.maxAttempts ? null : this.options.retryBaseMs * 2 ** (job.attempts - 1),
      supersededBy: this.newerOfGroup(job),
    };
    let verdict: JobVerdict;
    try {
      verdict = await runHandler({ handler, job: running, controller, renew: () => this.renew(job), everyMs: this.options.leaseMs / 3, log: this.options.log });
    } finally {
      this.current = null;
    }
    if (this.abandoned) return;
    this.settle(running, verdict);
    await this.locks.release(lock);
  }

  /** The newest job stored after `job` in its `supersedes` group, if any. */
  private newerOfGroup(job: Job): string | null {
    if (job.supersedes === null) return null;
    const newer = this.queue.db.prepare("SELECT MAX(id) AS id FROM jobs WHERE supersedes = ? AND id > ?").get(job.supersedes, Number(job.id)) as { id: number | null };
    return newer.id === null ? null : String(newer.id);
  }

  /** Renews the job's lease and its repo's lock; false when either is no longer this runner's. */
  private async renew(job: Job): Promise<boolean> {
    if (this.abandoned) return true;
    const { leaseMs } = this.options;
    const extended = this.queue.db
      .prepare("UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'running'")
      .run(this.queue.now() + leaseMs, Number(job.id), this.id).changes;
    return extended === 1 && (await this.locks.renew({ forge: job.forge, repo: job.repo, owner: this.id, ttlMs: leaseMs }));
  }

  /** Stores the verdict, if the job is still this runner's (a lost lease leaves it to the new holder). */
  private settle(job: RunningJob, verdict: JobVerdict): void {
    const now = this.queue.now();
    const where = "WHERE id = @id AND lease_owner = @owner AND state = 'running'";
    const at = { id: Number(job.id), owner: this.id, now };
    const fail = (error: string) =>
      this.queue.db.prepare(`UPDATE jobs SET state = 'failed', error = @error, finished_at = @now, lease_owner = NULL, lease_until = NULL ${where}`).run({ ...at, error });
    switch (verdict.verdict) {
      case "done":
        this.queue.db
          .prepare(`UPDATE jobs SET state = 'done', result = @result, error = NULL, finished_at = @now, lease_owner = NULL, lease_until = NULL ${where}`)
          .run({ ...at, result: JSON.stringify(verdict.result ?? null) });
        return;
      case "fail":
        fail(verdict.error);
        return;
      case "retry":
        if (job.retryInMs === null) fail(`gave up after ${job.attempts} attempts; last error: ${verdict.error}`);
        else {
          this.queue.db
            .prepare(`UPDATE jobs SET state = 'queued', error = @error, run_after = @runAfter, lease_owner = NULL, lease_until = NULL ${where}`)
            .run({ ...at, error: verdict.error, runAfter: now + job.retryInMs });
        }
    }
  }

  /**
   * The oldest runnable job of a repo whose lock this runner gets, leased to it; null when there is none.
   * Runnable: queued and due, or running under a lease that ran out (its runner died).
   */
  private async take(): Promise<Job | null> {
    for (;;) {
      const now = this.queue.now();
      const candidates = this.queue.db
        .prepare(
          `SELECT id, forge, repo, needs FROM jobs WHERE (state = 'queued' AND run_after <= @now) OR (state = 'running' AND lease_until < @now)
           ORDER BY run_after, id`,
        )
        .all({ now }) as Array<Pick<JobRow, "id" | "forge" | "repo" | "needs">>;
      const tried = new Set<string>();
      let settledOne = false;
      for (const candidate of candidates) {
        const repo = JSON.stringify([candidate.forge, candidate.repo]);
        // Only a repo's oldest runnable job may start: the others wait their turn.
        if (tried.has(repo)) continue;
        tried.add(repo);
        // A job that needs a GPU waits for a runner that has one; its repo's later jobs wait behind it.
        if (candidate.needs === "gpu" && !this.capabilities.gpu) continue;
        const lock = { forge: candidate.forge, repo: candidate.repo, owner: this.id };
        if (!(await this.locks.acquire({ ...lock, ttlMs: this.options.leaseMs }))) continue;
        const taken = this.leaseRow(candidate.id);
        if (taken !== null && taken !== "settled") return taken;
        await this.locks.release(lock);
        if (taken === "settled") settledOne = true;
      }
      // A damaged or exhausted job was failed: the next job of its repo may run now.
      if (!settledOne) return null;
    }
  }

  /** Leases one row if it is still runnable; "settled" when it was failed instead (damaged, or out of attempts). */
  private leaseRow(id: number): Job | "settled" | null {
    const db = this.queue.db;
    return db
      .transaction((): Job | "settled" | null => {
        const now = this.queue.now();
        const row = db
          .prepare("SELECT * FROM jobs WHERE id = @id AND ((state = 'queued' AND run_after <= @now) OR (state = 'running' AND lease_until < @now))")
          .get({ id, now }) as JobRow | undefined;
        if (!row) return null;
        const failRow = (error: string) =>
          db.prepare("UPDATE jobs SET state = 'failed', error = ?, finished_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?").run(error, now, id);
        if (storedJson(row.payload) === undefined) {
          // One damaged row fails alone; left queued, it would be picked first on every take and block its repo.
          failRow("the stored job is damaged (its payload is not JSON); push or comment again to queue a new one");
          return "settled";
        }
        if (row.attempts >= this.maxAttempts) {
          failRow(`gave up after ${row.attempts} attempts; last error: ${row.error ?? "the worker stopped while running it"}`);
          return "settled";
        }
        db.prepare("UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = ?, lease_until = ?, started_at = ? WHERE id = ?").run(
          this.id,
          now + this.options.leaseMs,
          now,
          id,
        );
        return jobOfRow(db.prepare("SELECT * FROM jobs WHERE id = ?").get(id) as JobRow);
      })
      .immediate();
  }
}
