import Database from "better-sqlite3";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { SafeLoraError } from "../errors.js";
import type { ForgeName } from "../forge/forge.js";
import { JOB_STATES, type Job, type JobQueue, type JobState, type NewJob, type QueueHealth } from "./job-queue.js";

interface Row {
  id: number;
  key: string;
  kind: string;
  forge: ForgeName;
  repo: string;
  private: number;
  payload: string;
  state: JobState;
  attempts: number;
  result: string | null;
  error: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

/** A stored JSON column, or `undefined` when the text is not JSON (a damaged row must not break every read). */
function storedJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const toJob = (row: Row): Job => ({
  id: String(row.id),
  key: row.key,
  kind: row.kind,
  forge: row.forge,
  repo: row.repo,
  private: row.private === 1,
  payload: storedJson(row.payload),
  state: row.state,
  attempts: row.attempts,
  result: storedJson(row.result) ?? null,
  error: row.error,
  createdAt: row.created_at,
  startedAt: row.started_at,
  finishedAt: row.finished_at,
});

/**
 * Written beside the database once its tables exist. A database file that is missing or has no tables while
 * this marker is there was emptied or replaced, not new: starting on it would silently forget every stopped
 * adapter and posted notice, so it is refused instead.
 */
export const markerPathOf = (path: string) => `${path}.created`;

/** Opens the file, or says (naming it) that it is not a healthy SQLite database: a process must not limp on one. */
function openChecked(path: string): Database.Database {
  const damaged = (detail: string, cause?: unknown) =>
    new SafeLoraError(
      `${path} is damaged (${detail}); stop every bot process using it, then restore it from a backup, or move it aside to start with an empty queue and memory`,
      "damaged-state",
      { cause },
    );
  let db: Database.Database | undefined;
  try {
    db = new Database(path);
    db.pragma("busy_timeout = 5000");
    const problems = (db.pragma("quick_check") as Array<{ quick_check: string }>).map((row) => row.quick_check).filter((line) => line !== "ok");
    if (problems.length > 0) throw damaged(`SQLite quick_check: ${problems.slice(0, 3).join("; ")}`);
    return db;
  } catch (error) {
    db?.close();
    if (error instanceof SafeLoraError) throw error;
    throw damaged(`SQLite: ${(error as Error).message}`, error);
  }
}

/**
 * The embedded queue: one SQLite file under DATA_DIR (WAL mode, so `serve` and separate `worker` processes
 * can share it). Every change is one transaction; a job is on disk before enqueue returns.
 */
export class SqliteJobQueue implements JobQueue {
  readonly db: Database.Database;
  /** The last claim's failure, while claims fail: what /healthz reports. */
  private claimFailure: string | null = null;

  constructor(
    path: string,
    private readonly options: { maxAttempts?: number; now?: () => number } = {},
  ) {
    const onDisk = path !== ":memory:";
    if (onDisk) mkdirSync(dirname(path), { recursive: true });
    this.db = onDisk ? openChecked(path) : new Database(path);
    const hasTables = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").get() !== undefined;
    if (onDisk && !hasTables && existsSync(markerPathOf(path))) {
      this.db.close();
      throw new SafeLoraError(
        `${path} holds no tables, but this DATA_DIR had a queue there (${markerPathOf(path)} exists): the database was emptied or replaced. ` +
          `Restore it from a backup; to start afresh on purpose (the bot then forgets stopped adapters and posted notices), delete both files`,
        "damaged-state",
      );
    }
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("synchronous = FULL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        forge TEXT NOT NULL,
        repo TEXT NOT NULL,
        private INTEGER NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        run_after INTEGER NOT NULL,
        lease_owner TEXT,
        lease_until INTEGER,
        result TEXT,
        error TEXT,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER
      );
      CREATE INDEX IF NOT EXISTS jobs_runnable ON jobs (state, run_after);
      CREATE INDEX IF NOT EXISTS jobs_repo ON jobs (repo, state);
    `);
    if (onDisk && !existsSync(markerPathOf(path))) {
      writeFileSync(markerPathOf(path), `The safe-lora bot's queue ${path} was created here; see the README (Reliability) before deleting this file.\n`);
    }
  }

  health(): QueueHealth {
    return this.claimFailure === null ? { ok: true } : { ok: false, reason: `claiming jobs fails: ${this.claimFailure}` };
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private get maxAttempts(): number {
    return this.options.maxAttempts ?? 5;
  }

  async enqueue(job: NewJob): Promise<{ job: Job; created: boolean }> {
    const now = this.now();
    const inserted = this.db
      .prepare(
        `INSERT INTO jobs (key, kind, forge, repo, private, payload, state, run_after, created_at)
         VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?) ON CONFLICT(key) DO NOTHING`,
      )
      .run(job.key, job.kind, job.forge, job.repo, job.private ? 1 : 0, JSON.stringify(job.payload), job.runAfter ?? now, now);
    const row = this.db.prepare("SELECT * FROM jobs WHERE key = ?").get(job.key) as Row;
    return { job: toJob(row), created: inserted.changes === 1 };
  }

  async claim(owner: string, leaseMs: number): Promise<Job | null> {
    try {
      const job = this.claimNow(owner, leaseMs);
      this.claimFailure = null;
      return job;
    } catch (error) {
      this.claimFailure = error instanceof Error ? error.message : String(error);
      throw error;
    }
  }

  private claimNow(owner: string, leaseMs: number): Job | null {
    const now = this.now();
    const take = this.db.transaction(() => {
      // Runnable: queued and due, or running under a lease that ran out (its worker died). Never a second
      // job for a repo that has one running under a live lease.
      const row = this.db
        .prepare(
          `SELECT * FROM jobs j
           WHERE ((j.state = 'queued' AND j.run_after <= @now) OR (j.state = 'running' AND j.lease_until < @now))
             AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.repo = j.repo AND r.state = 'running' AND r.lease_until >= @now AND r.id <> j.id)
           ORDER BY j.run_after, j.id LIMIT 1`,
        )
        .get({ now }) as Row | undefined;
      if (!row) return null;
      if (storedJson(row.payload) === undefined) {
        // One damaged row fails alone; left queued, it would be picked first on every claim and block the queue.
        this.db
          .prepare("UPDATE jobs SET state = 'failed', error = ?, finished_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?")
          .run("the stored job is damaged (its payload is not JSON); push or comment again to queue a new one", now, row.id);
        return "retry-claim" as const;
      }
      if (row.attempts >= this.maxAttempts) {
        this.db
          .prepare("UPDATE jobs SET state = 'failed', error = ?, finished_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?")
          .run(`gave up after ${row.attempts} attempts; last error: ${row.error ?? "the worker stopped while running it"}`, now, row.id);
        return "retry-claim" as const;
      }
      this.db
        .prepare("UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = ?, lease_until = ?, started_at = ? WHERE id = ?")
        .run(owner, now + leaseMs, now, row.id);
      return toJob(this.db.prepare("SELECT * FROM jobs WHERE id = ?").get(row.id) as Row);
    });
    for (;;) {
      const job = take.immediate();
      if (job !== "retry-claim") return job;
    }
  }

  async extend(id: string, owner: string, leaseMs: number): Promise<boolean> {
    const changed = this.db
      .prepare("UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'running'")
      .run(this.now() + leaseMs, id, owner).changes;
    return changed === 1;
  }

  async complete(id: string, owner: string, result: unknown): Promise<void> {
    this.db
      .prepare("UPDATE jobs SET state = 'done', result = ?, error = NULL, finished_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?")
      .run(JSON.stringify(result ?? null), this.now(), id, owner);
  }

  async retry(id: string, owner: string, error: string, delayMs: number): Promise<void> {
    const now = this.now();
    const row = this.db.prepare("SELECT attempts FROM jobs WHERE id = ? AND lease_owner = ?").get(id, owner) as { attempts: number } | undefined;
    if (!row) return;
    if (row.attempts >= this.maxAttempts) {
      await this.fail(id, owner, `gave up after ${row.attempts} attempts; last error: ${error}`);
      return;
    }
    this.db
      .prepare("UPDATE jobs SET state = 'queued', error = ?, run_after = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?")
      .run(error, now + delayMs, id, owner);
  }

  async fail(id: string, owner: string, error: string): Promise<void> {
    this.db
      .prepare("UPDATE jobs SET state = 'failed', error = ?, finished_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?")
      .run(error, this.now(), id, owner);
  }

  async get(id: string): Promise<Job | null> {
    const row = this.db.prepare("SELECT * FROM jobs WHERE id = ?").get(id) as Row | undefined;
    return row ? toJob(row) : null;
  }

  async recent(limit: number): Promise<Job[]> {
    return (this.db.prepare("SELECT * FROM jobs ORDER BY id DESC LIMIT ?").all(limit) as Row[]).map(toJob);
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

  async close(): Promise<void> {
    this.db.close();
  }
}
