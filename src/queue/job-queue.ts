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
}

export interface Job {
  readonly id: string;
  readonly key: string;
  readonly kind: string;
  readonly forge: ForgeName;
  readonly repo: string;
  readonly private: boolean;
  readonly payload: unknown;
  readonly state: JobState;
  readonly attempts: number;
  readonly result: unknown;
  readonly error: string | null;
  readonly createdAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
}

/** Whether the queue works for workers right now; `/healthz` answers 503 when it does not. */
export type QueueHealth = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * The durable job queue the webhook writes to before it answers, and workers take jobs from. Jobs are
 * at-least-once: a worker holds a job under a lease it renews; a job whose lease runs out (its worker died)
 * is taken again. At most one job per repo runs at a time.
 */
export interface JobQueue {
  enqueue(job: NewJob): Promise<{ job: Job; created: boolean }>;
  /** Takes the oldest runnable job whose repo has no running job, leasing it to `owner` for `leaseMs`. */
  claim(owner: string, leaseMs: number): Promise<Job | null>;
  /** Renews a lease; false when the job is no longer this owner's (it expired and was taken). */
  extend(id: string, owner: string, leaseMs: number): Promise<boolean>;
  complete(id: string, owner: string, result: unknown): Promise<void>;
  /** Puts the job back to run again after `delayMs`, or fails it for good after its last attempt. */
  retry(id: string, owner: string, error: string, delayMs: number): Promise<void>;
  fail(id: string, owner: string, error: string): Promise<void>;
  get(id: string): Promise<Job | null>;
  recent(limit: number): Promise<Job[]>;
  counts(): Promise<Record<JobState, number>>;
  /** Done jobs by the `outcome` field of their result (`""` for results without one), e.g. how many were refused. */
  doneOutcomes(): Promise<Record<string, number>>;
  /** Unhealthy while claims fail (a damaged database, a full disk), so that a supervisor can replace the process. */
  health(): QueueHealth;
  close(): Promise<void>;
}
