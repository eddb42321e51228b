import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { JOB_STATES, type Job, type JobKind, type JobQueue, type JobState, type NewJob } from "./job-queue.js";

interface Row {
  id: number;
  key: string;
  kind: JobKind;
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

const toJob = (row: Row): Job => ({
  id: row.id,
  key: row.key,
  kind: row.kind,
  repo: row.repo,
  private: row.private === 1,
  payload: JSON.parse(row.payload) as unknown,
  state: row.state,
  attempts: row.attempts,
  result: row.result === null ? null : (JSON.parse(row.result) as unknown),
  error: row.error,
  createdAt: row.created_at,
  startedAt: row.started_at,
  finishedAt: row.finished_at,
});

/**
 * The embedded queue: one SQLite file under DATA_DIR (WAL mode, so `serve` and separate `worker` processes
 * can share it). Every change is one transaction; a job is on disk before enqueue returns.
 */
export class SqliteJobQueue implements JobQueue {
  readonly db: Database.Database;

  constructor(
    path: string,
    private readonly options: { maxAttempts?: number; now?: () => number } = {},
  ) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("synchronous = FULL");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
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
        `INSERT INTO jobs (key, kind, repo, private, payload, state, run_after, created_at)
         VALUES (?, ?, ?, ?, ?, 'queued', ?, ?) ON CONFLICT(key) DO NOTHING`,
      )
      .run(job.key, job.kind, job.repo, job.private ? 1 : 0, JSON.stringify(job.payload), job.runAfter ?? now, now);
    const row = this.db.prepare("SELECT * FROM jobs WHERE key = ?").get(job.key) as Row;
    return { job: toJob(row), created: inserted.changes === 1 };
  }

  async claim(owner: string, leaseMs: number): Promise<Job | null> {
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

  async extend(id: number, owner: string, leaseMs: number): Promise<boolean> {
    const changed = this.db
      .prepare("UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'running'")
      .run(this.now() + leaseMs, id, owner).changes;
    return changed === 1;
  }

  async complete(id: number, owner: string, result: unknown): Promise<void> {
    this.db
      .prepare("UPDATE jobs SET state = 'done', result = ?, error = NULL, finished_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?")
      .run(JSON.stringify(result ?? null), this.now(), id, owner);
  }

  async retry(id: number, owner: string, error: string, delayMs: number): Promise<void> {
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

  async fail(id: number, owner: string, error: string): Promise<void> {
    this.db
      .prepare("UPDATE jobs SET state = 'failed', error = ?, finished_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?")
      .run(error, this.now(), id, owner);
  }

  async get(id: number): Promise<Job | null> {
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

  async close(): Promise<void> {
    this.db.close();
  }
}
