import { totalmem } from "node:os";
import type { ForgeName } from "../forge/forge.js";

export type JobState = "queued" | "running" | "done" | "failed";
export const JOB_STATES: readonly JobState[] = ["queued", "running", "done", "failed"];

export interface NewJob {
  /** Idempotency key (job-key.ts): a second enqueue with the same key returns the first job and creates nothing. */
  readonly key: string;
  /** What the job is for, one of the kinds the bot registers (bot/job-kinds.ts); the queue does not check it. */
  readonly kind: string;
  /** The forge the repo lives on. */
  readonly forge: ForgeName;
  readonly repo: string;
  /** Private repos are redacted on the status page and in metrics without STATUS_TOKEN. */
  readonly private: boolean;
  readonly payload: unknown;
  /** Earliest start, epoch ms (default: now). */
  readonly runAfter?: number;
  /**
   * A group of jobs where only the newest matters (a pull request's re-patches): a job of the group that starts
   * after a newer one was stored runs with `supersededBy` set, so that its handler can step aside.
   */
  readonly supersedes?: string;
  /** What the job needs of a worker: "gpu" waits for a runner that has one (a CPU runner never takes it). */
  readonly needs?: JobNeeds;
}

export type JobNeeds = "gpu";

export interface Job {
  readonly id: string;
  readonly key: string;
  readonly kind: string;
  readonly forge: ForgeName;
  readonly repo: string;
  readonly private: boolean;
  readonly payload: unknown;
  readonly supersedes: string | null;
  readonly needs: JobNeeds | null;
  readonly state: JobState;
  /** Runs started so far, the one running included. */
  readonly attempts: number;
  /** Earliest (next) start, epoch ms: later than now while it waits out a retry's backoff. */
  readonly runAfter: number;
  readonly result: unknown;
  readonly error: string | null;
  readonly createdAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
}

/** Whether the queue works for workers right now; `/healthz` answers 503 when it does not. */
export type QueueHealth = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * The producer's and reader's side of the durable job queue: the webhook stores a job before it answers, the
 * status page and /metrics read them. Taking jobs and running them is the runner's (JobRunner).
 */
export interface JobQueue {
  enqueue(job: NewJob): Promise<{ job: Job; created: boolean }>;
  get(id: string): Promise<Job | null>;
  /** The newest jobs first. */
  recent(limit: number): Promise<Job[]>;
  counts(): Promise<Record<JobState, number>>;
  /** Done jobs by the `outcome` field of their result (`""` for results without one), e.g. how many were refused. */
  doneOutcomes(): Promise<Record<string, number>>;
  /** The runners that took part recently (each says what it can run), newest heartbeat first. */
  workers(): Promise<WorkerInfo[]>;
  /** Unhealthy while taking jobs fails (a damaged database, a full disk), so that a supervisor can replace the process. */
  health(): QueueHealth;
  /** The consumer's side for this queue's jobs, on the same backend (a `worker` process makes one, `serve` too). */
  createRunner(options: RunnerOptions): JobRunner;
  close(): Promise<void>;
}

/** Where a runner says what went wrong outside any job (pino's logger fits). */
export interface RunnerLog {
  error(fields: object, message: string): void;
}

export interface RunnerOptions {
  /** How long a taken job stays this runner's without renewal; a dead runner's job is taken again after it. */
  readonly leaseMs: number;
  /** How often an idle runner looks for a job (where the backend polls). */
  readonly pollMs: number;
  /** The first retry's delay; it doubles with each attempt. */
  readonly retryBaseMs: number;
  /** Runs of one job, the first included, before it fails for good (default 5). */
  readonly maxAttempts?: number;
  readonly log?: RunnerLog;
  /** What this runner can run, advertised to the others (default: a CPU runner). Only a GPU runner takes `needs: "gpu"` jobs. */
  readonly capabilities?: WorkerCapabilities;
}

/** What a worker advertises about itself. */
export interface WorkerCapabilities {
  /** The execution provider its projections run on (cpu, cuda, webgpu). */
  readonly executionProvider: string;
  /** Whether it takes jobs that need a GPU. */
  readonly gpu: boolean;
  /** Memory it may use, bytes (the machine's, or its budget). */
  readonly memoryBytes: number;
  /** Why better providers did not load ("cuda: libonnxruntime_providers_cuda.so not found"), for operators. */
  readonly notes?: readonly string[];
}

export interface WorkerInfo extends WorkerCapabilities {
  /** The runner's id: host, process and a random part. */
  readonly id: string;
  readonly startedAt: number;
  /** Its last heartbeat, epoch ms: a worker that stopped sending one is listed until it ages out. */
  readonly seenAt: number;
}

/** What a runner advertises when it is told nothing: the CPU, and the machine's memory. */
export const cpuWorker = (): WorkerCapabilities => ({ executionProvider: "cpu", gpu: false, memoryBytes: totalmem() });

/** How often a runner says it is alive, and how long a silent one stays listed. */
export const WORKER_HEARTBEAT_MS = 10_000;
export const WORKER_LISTED_MS = 5 * 60_000;

/** A job handed to the runner's handler: taken under a lease that the runner keeps renewing. */
export interface RunningJob extends Job {
  /** How long the job waits before its next attempt should this one end in `retry`; null: this is its last attempt. */
  readonly retryInMs: number | null;
  /** The id of a newer job of the same `supersedes` group, stored before this one started; null when there is none. */
  readonly supersededBy: string | null;
}

/** What the handler says became of a job; the runner stores it. */
export type JobVerdict =
  /** Finished (refusals included: nothing to retry); `result` is kept with the job. */
  | { readonly verdict: "done"; readonly result: unknown }
  /** Run it again after a backoff, or fail it after the last attempt. */
  | { readonly verdict: "retry"; readonly error: string }
  /** Failed for good at once: running it again changes nothing (a damaged job). */
  | { readonly verdict: "fail"; readonly error: string };

/**
 * Runs one job. `signal` aborts when the job must stop: its lease was lost (another worker has it now) or the
 * runner stops without waiting. A handler that throws is a bug: the job is retried.
 */
export type JobHandler = (job: RunningJob, signal: AbortSignal) => Promise<JobVerdict>;

/**
 * The consumer's side: takes jobs one at a time and hands them to the handler. It owns what a queue backend
 * owns (BullMQ does all of this itself): leases and their renewal, taking again a job whose worker died,
 * retries with exponential backoff up to a last attempt, and at most one running job per repo (RepoLocks).
 * Jobs are at-least-once: every handler must be safe to run twice.
 */
export interface JobRunner {
  /** Who holds the leases: host, process and a random part. */
  readonly id: string;
  /** Starts taking jobs (once; later calls do nothing). */
  start(handler: JobHandler): void;
  /** Wakes an idle runner at once (a job was just stored in this process). */
  poke(): void;
  /**
   * Takes no new job; waits for the running one to finish (a graceful drain). With `abandon`, returns at once
   * and leaves the running job's lease to run out, as a crash would: another runner takes it after that.
   */
  stop(options?: { readonly abandon?: boolean }): Promise<void>;
}

/** One repo on one forge: what "one job per repo at a time" is about. */
export interface RepoLockRef {
  readonly forge: ForgeName;
  readonly repo: string;
}

/**
 * "At most one running job per repo" as an explicit lock with a time to live, so that a backend without
 * per-group concurrency (BullMQ's free edition) can provide it (SET NX PX in Redis). A lock whose holder
 * died runs out with its lease.
 */
export interface RepoLocks {
  /** Takes the repo's lock for `owner` for `ttlMs`; false while someone else holds it. Taking one's own again renews it. */
  acquire(lock: RepoLockRef & { readonly owner: string; readonly ttlMs: number }): Promise<boolean>;
  /** Extends `owner`'s lock; false when it is no longer theirs (it ran out and was taken). */
  renew(lock: RepoLockRef & { readonly owner: string; readonly ttlMs: number }): Promise<boolean>;
  /** Lets go of `owner`'s lock; nothing happens when it is not theirs. */
  release(lock: RepoLockRef & { readonly owner: string }): Promise<void>;
}
