import { createHash, randomBytes } from "node:crypto";
import { Job as BullJob, Queue } from "bullmq";
import type { Redis } from "ioredis";
import { z } from "zod";
import { BullMqJobRunner } from "./bullmq-runner.js";
import {
  JOB_STATES,
  WORKER_LISTED_MS,
  type Job,
  type JobNeeds,
  type JobQueue,
  type JobRunner,
  type JobState,
  type NewJob,
  type QueueHealth,
  type RunnerOptions,
  type WorkerCapabilities,
  type WorkerInfo,
} from "./job-queue.js";
import { bullProducerOptions, connectRedis, redactedUrl } from "./redis-connection.js";

/** One BullMQ queue per kind of worker: every worker takes "jobs", only GPU workers take "gpu-jobs" too. */
export const QUEUE_NAMES = { any: "jobs", gpu: "gpu-jobs" } as const;

/** Attempts are counted and capped by the runner (it knows maxAttempts); BullMQ's own cap only has to be above it. */
export const BULLMQ_ATTEMPTS = 1_000_000;
/** The backoff type of every job: the runner's strategy computes each delay (bullmq-runner.ts). */
export const BACKOFF_TYPE = "safe-lora";

/** What the bot stores as a BullMQ job's data. Read back through this schema: a damaged entry fails alone. */
export const StoredJobData = z.object({
  key: z.string(),
  kind: z.string(),
  forge: z.enum(["hub", "github"]),
  repo: z.string(),
  private: z.boolean(),
  payload: z.unknown(),
  supersedes: z.string().nullable(),
  needs: z.literal("gpu").nullable(),
  createdAt: z.number(),
  /** The order of enqueues (INCR): newest first on the status page, newest of a supersedes group. */
  seq: z.number(),
  /** Random per enqueue: the stored job carries ours only if this enqueue created it. */
  token: z.string(),
});
export type StoredJobData = z.infer<typeof StoredJobData>;

/** The job id of a key: BullMQ ids may not contain ':' or be all digits, and keys are outside text of any length. */
export function bullJobId(key: string, needs: JobNeeds | null): string {
  return `${needs === "gpu" ? "g" : "j"}${createHash("sha256").update(key).digest("hex").slice(0, 40)}`;
}

const JOB_ID = /^[jg][0-9a-f]{40}$/;

export interface BullMqQueueOptions {
  /** redis:// or rediss:// URL. */
  readonly url: string;
  /** The prefix of every key (SAFE_LORA_QUEUE_PREFIX). */
  readonly prefix: string;
}

/**
 * The job queue on BullMQ in Redis, for a web process and workers on many machines. BullMQ keeps the jobs,
 * their locks, retries with backoff and the recovery of stalled jobs (a dead worker's); the bot adds under the
 * same prefix what BullMQ's free edition lacks: the idempotency check (the job id is a hash of the key), the
 * order of enqueues, supersedes groups, per-repo locks (redis-repo-locks.ts), attempt counts, outcomes and the
 * workers' heartbeats.
 */
export class BullMqJobQueue implements JobQueue {
  readonly queues: { readonly any: Queue; readonly gpu: Queue };
  private closed = false;

  private constructor(
    readonly options: BullMqQueueOptions,
    /** The bot's own keys and fast-failing enqueues. */
    readonly redis: Redis,
  ) {
    const connection = { url: options.url, ...bullProducerOptions };
    const make = (name: string) => {
      const queue = new Queue(name, { connection, prefix: options.prefix });
      // An 'error' event without a listener would crash the process; health() reports the connection instead.
      queue.on("error", () => {});
      return queue;
    };
    this.queues = { any: make(QUEUE_NAMES.any), gpu: make(QUEUE_NAMES.gpu) };
  }

  static async connect(options: BullMqQueueOptions): Promise<BullMqJobQueue> {
    const redis = await connectRedis(options.url);
    const queue = new BullMqJobQueue(options, redis);
    try {
      await Promise.all([queue.queues.any.waitUntilReady(), queue.queues.gpu.waitUntilReady()]);
    } catch (error) {
      await queue.close();
      throw new Error(`could not open the BullMQ queue at ${redactedUrl(options.url)}: ${error instanceof Error ? error.message : String(error)}`);
    }
    return queue;
  }

  /** A key of the bot's own under the prefix. */
  key(name: string): string {
    return `${this.options.prefix}:safe-lora:${name}`;
  }

  groupKey(group: string): string {
    return this.key(`group:${createHash("sha256").update(group).digest("hex").slice(0, 40)}`);
  }

  metaKey(id: string): string {
    return this.key(`meta:${id}`);
  }

  queueOf(id: string): Queue {
    return id.startsWith("g") ? this.queues.gpu : this.queues.any;
  }

  health(): QueueHealth {
    if (this.closed) return { ok: false, reason: "the queue is closed" };
    return this.redis.status === "ready" ? { ok: true } : { ok: false, reason: `the queue's Redis at ${redactedUrl(this.options.url)} is ${this.redis.status}` };
  }

  createRunner(options: RunnerOptions): JobRunner {
    return new BullMqJobRunner(this, options);
  }

  async enqueue(job: NewJob): Promise<{ job: Job; created: boolean }> {
    if (this.closed) throw new Error("the queue is closed");
    const needs = job.needs ?? null;
    const id = bullJobId(job.key, needs);
    const now = Date.now();
    const seq = await this.redis.incr(this.key("seq"));
    const data: StoredJobData = {
      key: job.key,
      kind: job.kind,
      forge: job.forge,
      repo: job.repo,
      private: job.private,
      payload: job.payload,
      supersedes: job.supersedes ?? null,
      needs,
      createdAt: now,
      seq,
      token: randomBytes(12).toString("hex"),
    };
    // Listed before it is added: a crash in between leaves an entry that names no job, which readers skip,
    // never a job that no list names. NX keeps the first enqueue's place.
    const lists = this.redis.multi().zadd(this.key("recent"), "NX", seq, id);
    if (data.supersedes !== null) lists.zadd(this.groupKey(data.supersedes), "NX", seq, id);
    await lists.exec();
    await this.queueOf(id).add(job.kind, data, {
      jobId: id,
      delay: Math.max(0, (job.runAfter ?? now) - now),
      attempts: BULLMQ_ATTEMPTS,
      backoff: { type: BACKOFF_TYPE },
    });
    // A second enqueue of a key finds the first job: BullMQ ignores an add with an id it holds.
    const stored = await this.read(id);
    if (!stored) throw new Error(`job ${id} was added to Redis but cannot be read back`);
    return { job: stored.job, created: (stored.bull.data as { token?: unknown } | undefined)?.token === data.token };
  }

  async get(id: string): Promise<Job | null> {
    if (!JOB_ID.test(id)) return null;
    return (await this.read(id))?.job ?? null;
  }

  /**
   * A job as the contract shows it. The state is read before the job's hash: a job finishing in between then
   * reads as still running with its result already there, never as done without its result.
   */
  private async read(id: string): Promise<{ job: Job; bull: BullJob } | null> {
    const queue = this.queueOf(id);
    const state = await queue.getJobState(id);
    const [bull, meta] = await Promise.all([BullJob.fromId(queue, id), this.redis.hgetall(this.metaKey(id))]);
    return bull ? { job: jobOf(bull, state, meta), bull } : null;
  }

  async recent(limit: number): Promise<Job[]> {
    const ids = await this.redis.zrevrange(this.key("recent"), 0, Math.max(0, limit) - 1);
    const jobs = await Promise.all(ids.map((id) => this.get(id)));
    return jobs.filter((job): job is Job => job !== null);
  }

  async counts(): Promise<Record<JobState, number>> {
    const counts = Object.fromEntries(JOB_STATES.map((state) => [state, 0])) as Record<JobState, number>;
    for (const queue of [this.queues.any, this.queues.gpu]) {
      const bull = await queue.getJobCounts("waiting", "delayed", "prioritized", "waiting-children", "active", "completed", "failed");
      counts.queued += (bull.waiting ?? 0) + (bull.delayed ?? 0) + (bull.prioritized ?? 0) + (bull["waiting-children"] ?? 0);
      counts.running += bull.active ?? 0;
      counts.done += bull.completed ?? 0;
      counts.failed += bull.failed ?? 0;
    }
    return counts;
  }

  async doneOutcomes(): Promise<Record<string, number>> {
    const stored = await this.redis.hgetall(this.key("outcomes"));
    return Object.fromEntries(Object.entries(stored).map(([outcome, n]) => [outcome, Number(n)]));
  }

  async workers(): Promise<WorkerInfo[]> {
    const since = Date.now() - WORKER_LISTED_MS;
    await this.redis.zremrangebyscore(this.key("workers-seen"), "-inf", `(${since}`);
    const ids = await this.redis.zrevrangebyscore(this.key("workers-seen"), "+inf", since, "WITHSCORES");
    const listed: WorkerInfo[] = [];
    for (let i = 0; i < ids.length; i += 2) {
      const id = ids[i]!;
      const info = await this.redis.hget(this.key("workers"), id);
      const parsed = info ? StoredWorker.safeParse(safeJson(info)) : null;
      if (parsed?.success) listed.push({ ...parsed.data, id, seenAt: Number(ids[i + 1]) });
    }
    return listed;
  }

  /** A runner's heartbeat: what it can run, now. */
  async noteWorker(id: string, capabilities: WorkerCapabilities, startedAt: number): Promise<void> {
    await this.redis
      .multi()
      .hset(this.key("workers"), id, JSON.stringify({ ...capabilities, startedAt }))
      .zadd(this.key("workers-seen"), Date.now(), id)
      .exec();
  }

  async forgetWorker(id: string): Promise<void> {
    await this.redis.multi().hdel(this.key("workers"), id).zrem(this.key("workers-seen"), id).exec();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([this.queues.any.close(), this.queues.gpu.close()]);
    this.redis.disconnect();
  }
}

const StoredWorker = z.object({
  executionProvider: z.string().max(64),
  gpu: z.boolean(),
  memoryBytes: z.number().nonnegative(),
  notes: z.array(z.string().max(500)).max(10).optional(),
  startedAt: z.number(),
});

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** BullMQ's states as the queue contract names them. */
function stateOf(state: string): JobState {
  switch (state) {
    case "active":
      return "running";
    case "completed":
      return "done";
    case "failed":
      return "failed";
    default:
      return "queued";
  }
}

/** The contract's view of a BullMQ job and the bot's meta hash for it; damaged data reads as an undefined payload. */
export function jobOf(bull: BullJob, bullState: string, meta: Record<string, string>): Job {
  const parsed = StoredJobData.safeParse(bull.data);
  const data = parsed.success ? parsed.data : null;
  const state = stateOf(bullState);
  return {
    id: bull.id!,
    key: data?.key ?? "",
    kind: data?.kind ?? bull.name,
    forge: data?.forge ?? "hub",
    repo: data?.repo ?? "",
    // Unreadable data is shown as private: nothing of it reaches the public status page.
    private: data?.private ?? true,
    payload: data ? data.payload : undefined,
    supersedes: data?.supersedes ?? null,
    needs: data?.needs ?? null,
    state,
    attempts: Number(meta.attempts ?? 0),
    runAfter: meta.runAfter !== undefined ? Number(meta.runAfter) : bull.timestamp + (bull.delay ?? 0),
    result: state === "done" ? ((bull.returnvalue as unknown) ?? null) : null,
    error: state === "done" ? null : bull.failedReason || null,
    createdAt: data?.createdAt ?? bull.timestamp,
    startedAt: meta.startedAt !== undefined ? Number(meta.startedAt) : null,
    finishedAt: state === "done" || state === "failed" ? (bull.finishedOn ?? null) : null,
  };
}
