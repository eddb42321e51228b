import { redactRepo, repoLogFields } from "./log-fields.js";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { SafeLoraError } from "../errors.js";
import type { Job } from "../queue/job-queue.js";
import type { BotContext } from "./context.js";
import { isTransient, isUserError } from "./errors.js";
import { jobKind } from "./job-kinds.js";
import { resultOutcome } from "./job-outcome.js";

const MAX_CLAIM_BACKOFF_MS = 60_000;

export interface WorkerOptions {
  /** How long a claimed job stays ours without a heartbeat; a dead worker's job is taken again after it. */
  readonly leaseMs: number;
  /** Idle polling interval. */
  readonly pollMs: number;
  /** First retry delay; doubles with each attempt. */
  readonly retryBaseMs: number;
}

/**
 * Takes jobs from the queue one at a time and runs them. At-least-once: a job is marked done only after its
 * work is finished, and every job is written so that running it twice does no harm (see patch-job.ts).
 * `stop()` lets the running job finish (a graceful drain) and takes no new one.
 */
export class Worker {
  readonly id = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  private stopping = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private current: AbortController | null = null;

  constructor(
    private readonly context: BotContext,
    private readonly options: WorkerOptions,
  ) {}

  start(): void {
    this.loop ??= this.run();
  }

  /** Wakes an idle worker at once (a webhook just queued a job in this process). */
  poke(): void {
    this.wake?.();
  }

  /** Finishes the running job, then stops. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    let failedClaims = 0;
    while (!this.stopping) {
      let job: Job | null = null;
      try {
        job = await this.context.queue.claim(this.id, this.options.leaseMs);
        failedClaims = 0;
      } catch (error) {
        failedClaims++;
        this.context.log.error({ err: error, failedClaims }, "could not claim a job; /healthz reports it");
      }
      if (!job) {
        // While claims fail (a damaged database), wait longer each time, up to a minute, rather than logging
        // the same error several times a second forever.
        const wait = failedClaims === 0 ? this.options.pollMs : Math.min(MAX_CLAIM_BACKOFF_MS, this.options.pollMs * 2 ** failedClaims);
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
      await this.runOne(job);
    }
  }

  private async runOne(job: Job): Promise<void> {
    const { queue, log, metrics } = this.context;
    const started = performance.now();
    const controller = new AbortController();
    this.current = controller;
    const heartbeat = setInterval(() => {
      void queue.extend(job.id, this.id, this.options.leaseMs).then((ours) => {
        // Another worker has the job now: stop, and leave the outcome to it (not a user-facing failure).
        if (!ours) controller.abort(new Error("the job's lease was lost to another worker"));
      });
    }, Math.max(100, this.options.leaseMs / 3));
    const { maxRunMinutes } = this.context.config.limits;
    const deadline = setTimeout(
      () => controller.abort(new SafeLoraError(`the job took longer than the limit of ${maxRunMinutes} minutes (limits.maxRunMinutes)`, "limit-exceeded", { fix: { kind: "raise-limit", limit: "maxRunMinutes" } })),
      maxRunMinutes * 60_000,
    );
    // Every line about a private repo's job leaves its name out, whatever the line says.
    const jobLog = log.child({ job: job.id, kind: job.kind, attempt: job.attempts, ...repoLogFields(job.repo, job.private) });
    const scrub = (text: string) => redactRepo(text, job.repo, job.private);
    jobLog.info("job started");
    let outcome = "done";
    // Set when the job leaves the queue for good (done or failed), not when it is only put back for a retry.
    let finished: string | null = null;
    try {
      // A stored job that no longer reads as its kind (a damaged row) fails alone, at once: retrying changes nothing.
      const definition = jobKind(job.kind);
      const parsed = definition?.payload.safeParse(job.payload);
      const problem = !definition || !parsed ? "unknown kind" : parsed.success ? null : (parsed.error.issues[0]?.message ?? "invalid payload");
      if (!definition || !parsed?.success || problem !== null) {
        outcome = "damaged";
        finished = "failed";
        await queue.fail(job.id, this.id, `the stored job is damaged (${problem}); push or comment again to queue a new one`);
        jobLog.error({ problem }, "job damaged");
        return;
      }
      const result = await definition.run(this.context, {
        id: job.id,
        forge: this.context.forge,
        repo: job.repo,
        private: job.private,
        attempts: job.attempts,
        payload: parsed.data,
        signal: controller.signal,
      });
      await queue.complete(job.id, this.id, result);
      outcome = finished = resultOutcome(result);
      jobLog.info({ result: JSON.parse(scrub(JSON.stringify(result ?? null))) as unknown }, "job done");
    } catch (error) {
      if (isUserError(error)) {
        // Nothing a retry would change (a deleted repo, a bad config file): record why, and stop.
        outcome = finished = "refused";
        await queue.complete(job.id, this.id, { outcome: "refused", reason: error.message, code: error.code });
        jobLog.info({ reason: scrub(error.message) }, "job refused");
        return;
      }
      const transient = isTransient(error);
      const message = error instanceof Error ? error.message : String(error);
      // Transient failures and bugs are retried with backoff; the queue gives up after the last attempt.
      outcome = transient ? "retry" : "error";
      const delay = this.options.retryBaseMs * 2 ** (job.attempts - 1);
      await queue.retry(job.id, this.id, message, delay);
      if ((await queue.get(job.id))?.state === "failed") finished = "failed";
      const err = job.private ? { type: error instanceof Error ? error.name : typeof error, message: scrub(message) } : error;
      jobLog[transient ? "warn" : "error"]({ err, retryInMs: delay }, "job failed");
    } finally {
      clearInterval(heartbeat);
      clearTimeout(deadline);
      this.current = null;
      metrics.jobDuration.observe({ kind: job.kind, outcome }, (performance.now() - started) / 1000);
      if (finished) metrics.jobsFinished.inc({ kind: job.kind, outcome: finished });
    }
  }
}
