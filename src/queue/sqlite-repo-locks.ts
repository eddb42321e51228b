import type Database from "better-sqlite3";
import type { RepoLockRef, RepoLocks } from "./job-queue.js";

/** Per-repo locks in the bot's SQLite file (`repo_locks`): one row per locked repo, until it runs out. */
export class SqliteRepoLocks implements RepoLocks {
  constructor(
    private readonly db: Database.Database,
    private readonly now: () => number = Date.now,
  ) {}

  async acquire(lock: RepoLockRef & { owner: string; ttlMs: number }): Promise<boolean> {
    const now = this.now();
    const taken = this.db
      .prepare(
        `INSERT INTO repo_locks (forge, repo, owner, until) VALUES (@forge, @repo, @owner, @until)
         ON CONFLICT (forge, repo) DO UPDATE SET owner = excluded.owner, until = excluded.until
         WHERE repo_locks.owner = excluded.owner OR repo_locks.until < @now`,
      )
      .run({ forge: lock.forge, repo: lock.repo, owner: lock.owner, until: now + lock.ttlMs, now });
    return taken.changes === 1;
  }

  async renew(lock: RepoLockRef & { owner: string; ttlMs: number }): Promise<boolean> {
    // Still ours while nobody else took it, even if it ran out meanwhile (a late heartbeat is not a lost job).
    const renewed = this.db
      .prepare("UPDATE repo_locks SET until = ? WHERE forge = ? AND repo = ? AND owner = ?")
      .run(this.now() + lock.ttlMs, lock.forge, lock.repo, lock.owner);
    return renewed.changes === 1;
  }

  async release(lock: RepoLockRef & { owner: string }): Promise<void> {
    this.db.prepare("DELETE FROM repo_locks WHERE forge = ? AND repo = ? AND owner = ?").run(lock.forge, lock.repo, lock.owner);
  }
}
