import type Database from "better-sqlite3";
import {
  JOB_STATES,
  WORKER_LISTED_MS,
  type Job,
  type JobQueue,
  type JobRunner,
  type JobState,
  type NewJob,
  type QueueHealth,
  type WorkerCapabilities,
  type WorkerInfo,
} from "./job-queue.js";
import { openBotDatabase } from "./sqlite-database.js";
import { jobOfRow, rowIdOf, storedJson, type JobRow } from "./sqlite-job-row.js";
import { SqliteJobRunner, type SqliteRunnerOptions } from "./sqlite-runner.js";
import type { LegacyJobKey } from "./job-key.js";

export { markerPathOf } from "./sqlite-database.js";

export interface SqliteQueueOptions {
  /** The clock, epoch ms (tests). */
  readonly now?: () => number;
  /** Upgrades a file written by the first release (sqlite-schema.ts); without it such a file is refused. */
  readonly legacyJobKey?: LegacyJobKey;
}

/**
 * The embedded queue: one SQLite file under DATA_DIR. Every change is one transaction; a job is on disk
 * before enqueue returns. Its runner (SqliteJobRunner) and the bot's memory (SqliteBotMemory) use the same
 * file through `db`.
 */
export class SqliteJobQueue implements JobQueue {
  /** The database handle, for the runner, the repo locks and the bot's memory in this folder. */
  readonly db: Database.Database;
  readonly now: () => number;
  /** The last take's failure while taking jobs fails (set by the runner): what /healthz reports. */
  private takeFailure: string | null = null;

  constructor(path: string, options: SqliteQueueOptions = {}) {
    this.db = openBotDatabase(path, options.legacyJobKey ? { legacyJobKey: options.legacyJobKey } : {});
    this.now = options.now ?? Date.now;
  }

  health(): QueueHealth {
    return this.takeFailure === null ? { ok: true } : { ok: false, reason: `claiming jobs fails: ${this.takeFailure}` };
  }

  /** The runner says whether taking a job worked (null) or how it failed. */
  noteTake(failure: string | null): void {
    this.takeFailure = failure;
  }

  createRunner(options: SqliteRunnerOptions): JobRunner {
    return new SqliteJobRunner(this, options);
  }

  async enqueue(job: NewJob): Promise<{ job: Job; created: boolean }> {
    const now = this.now();
    const inserted = this.db
      .prepare(
        `INSERT INTO jobs (key, kind, forge, repo, private, payload, supersedes, needs, state, run_after, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?) ON CONFLICT(key) DO NOTHING`,
      )
      .run(job.key, job.kind, job.forge, job.repo, job.private ? 1 : 0, JSON.stringify(job.payload), job.supersedes ?? null, job.needs ?? null, job.runAfter ?? now, now);
    const row = this.db.prepare("SELECT * FROM jobs WHERE key = ?").get(job.key) as JobRow;
    return { job: jobOfRow(row), created: inserted.changes === 1 };
  }

  async get(id: string): Promise<Job | null> {
    const row = this.db.prepare("SELECT * FROM jobs WHERE id = ?").get(rowIdOf(id)) as JobRow | undefined;
    return row ? jobOfRow(row) : null;
  }

  async recent(limit: number): Promise<Job[]> {
    return (this.db.prepare("SELECT * FROM jobs ORDER BY id DESC LIMIT ?").all(limit) as JobRow[]).map(jobOfRow);
  }

  async counts(): Promise<Record<JobState, number>> {
    const counts = Object.fromEntries(JOB_STATES.map((state) => [state, 0])) as Record<JobState, number>;
    for (const row of this.db.prepare("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").all() as Array<{ state: JobState; n: number }>) counts[row.state] = row.n;
    return counts;
  }

  async doneOutcomes(): Promise<Record<string, number>> {
    const rows = this.db
      .prepare("SELECT CASE WHEN json_valid(result) THEN json_extract(result, '$.outcome') END AS outcome, COUNT(*) AS n FROM jobs WHERE state = 'done' GROUP BY 1")
      .all() as Array<{ outcome: unknown; n: number }>;
    const outcomes: Record<string, number> = {};
    for (const { outcome, n } of rows) {
      const name = typeof outcome === "string" ? outcome : "";
      outcomes[name] = (outcomes[name] ?? 0) + n;
    }
    return outcomes;
  }

  async workers(): Promise<WorkerInfo[]> {
    const rows = this.db.prepare("SELECT id, info, started_at, seen_at FROM workers WHERE seen_at >= ? ORDER BY seen_at DESC").all(this.now() - WORKER_LISTED_MS) as Array<{
      id: string;
      info: string;
      started_at: number;
      seen_at: number;
    }>;
    return rows.flatMap((row) => {
      const info = storedJson(row.info) as WorkerCapabilities | undefined;
      return info && typeof info === "object" ? [{ ...info, id: row.id, startedAt: row.started_at, seenAt: row.seen_at }] : [];
    });
  }

  /** A runner's heartbeat: what it can run, now. */
  noteWorker(id: string, capabilities: WorkerCapabilities, startedAt: number): void {
    this.db
      .prepare("INSERT INTO workers (id, info, started_at, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET info = excluded.info, seen_at = excluded.seen_at")
      .run(id, JSON.stringify(capabilities), startedAt, this.now());
    this.db.prepare("DELETE FROM workers WHERE seen_at < ?").run(this.now() - WORKER_LISTED_MS);
  }

  /** A runner that stopped gracefully is no longer listed. */
  forgetWorker(id: string): void {
    if (this.db.open) this.db.prepare("DELETE FROM workers WHERE id = ?").run(id);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
