import type Database from "better-sqlite3";

/**
 * What the bot remembers beyond its jobs, in the same SQLite file: adapters people told it to stop
 * covering, notices already posted (so each is posted once), and acknowledgement comments (so a retried
 * command edits its first acknowledgement instead of posting a second).
 */
export class BotState {
  constructor(private readonly db: Database.Database) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS stopped (repo TEXT NOT NULL, folder TEXT NOT NULL, since INTEGER NOT NULL, PRIMARY KEY (repo, folder));
      CREATE TABLE IF NOT EXISTS notices (key TEXT PRIMARY KEY, repo TEXT NOT NULL, discussion INTEGER, posted_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS acks (comment_id TEXT PRIMARY KEY, repo TEXT NOT NULL, discussion INTEGER NOT NULL, ack_id TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS covered_owners (owner TEXT PRIMARY KEY, first_seen INTEGER NOT NULL);
    `);
  }

  /** An owner whose webhook (with the secret) reached the bot: installing it was their consent. */
  noteCoveredOwner(owner: string): void {
    this.db.prepare("INSERT OR IGNORE INTO covered_owners (owner, first_seen) VALUES (?, ?)").run(owner.toLowerCase(), Date.now());
  }

  hasCoveredOwner(owner: string): boolean {
    return this.db.prepare("SELECT 1 FROM covered_owners WHERE owner = ?").get(owner.toLowerCase()) !== undefined;
  }

  isStopped(repo: string, folder: string): boolean {
    return this.db.prepare("SELECT 1 FROM stopped WHERE repo = ? AND folder = ?").get(repo, folder) !== undefined;
  }

  stop(repo: string, folder: string): void {
    this.db.prepare("INSERT OR IGNORE INTO stopped (repo, folder, since) VALUES (?, ?, ?)").run(repo, folder, Date.now());
  }

  start(repo: string, folder: string): void {
    this.db.prepare("DELETE FROM stopped WHERE repo = ? AND folder = ?").run(repo, folder);
  }

  /** True the first time a notice key is claimed; later calls (retries, other jobs) get false. */
  claimNotice(key: string, repo: string): boolean {
    return this.db.prepare("INSERT OR IGNORE INTO notices (key, repo, posted_at) VALUES (?, ?, ?)").run(key, repo, Date.now()).changes === 1;
  }

  /** Where a notice was posted (a discussion or pull request number), once it was. */
  noticeDiscussion(key: string): number | null {
    return (this.db.prepare("SELECT discussion FROM notices WHERE key = ?").get(key) as { discussion: number | null } | undefined)?.discussion ?? null;
  }

  recordNoticeDiscussion(key: string, discussion: number): void {
    this.db.prepare("UPDATE notices SET discussion = ? WHERE key = ?").run(discussion, key);
  }

  releaseNotice(key: string): void {
    this.db.prepare("DELETE FROM notices WHERE key = ?").run(key);
  }

  ackFor(commentId: string): string | null {
    return (this.db.prepare("SELECT ack_id FROM acks WHERE comment_id = ?").get(commentId) as { ack_id: string } | undefined)?.ack_id ?? null;
  }

  recordAck(commentId: string, repo: string, discussion: number, ackId: string): void {
    this.db.prepare("INSERT OR REPLACE INTO acks (comment_id, repo, discussion, ack_id) VALUES (?, ?, ?, ?)").run(commentId, repo, discussion, ackId);
  }
}
