import type Database from "better-sqlite3";
import { SafeLoraError } from "../errors.js";
import { jobKey, type LegacyJobKey } from "./job-key.js";

/**
 * The schema this code reads and writes, recorded in the file as `PRAGMA user_version`:
 * 0 — the first release (up to 3588d4f): jobs without a forge, keys with ":", the bot's memory in
 *     `stopped`, `notices`, `acks` and `covered_owners`, every repo on the Hub;
 * 1 — jobs name their forge and have Redis-safe keys (job-key.ts), the runner's per-repo locks, the bot's
 *     memory keyed by forge (notices and acknowledgements are read back from the forge itself now);
 * 2 — jobs may name a `supersedes` group and what they `needs` of a worker; runners advertise themselves in `workers`;
 *     repos and accounts a GitHub App was removed from are in `uninstalled`.
 */
export const SCHEMA_VERSION = 2;

const WORKERS_TABLE = `CREATE TABLE workers (id TEXT PRIMARY KEY, info TEXT NOT NULL, started_at INTEGER NOT NULL, seen_at INTEGER NOT NULL);
  CREATE TABLE uninstalled (forge TEXT NOT NULL, name TEXT NOT NULL, since INTEGER NOT NULL, PRIMARY KEY (forge, name));`;

const CURRENT_TABLES = `
  CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    forge TEXT NOT NULL,
    repo TEXT NOT NULL,
    private INTEGER NOT NULL,
    payload TEXT NOT NULL,
    supersedes TEXT,
    needs TEXT,
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
  CREATE INDEX jobs_runnable ON jobs (state, run_after);
  CREATE INDEX jobs_repo ON jobs (forge, repo, state);
  CREATE INDEX jobs_supersedes ON jobs (supersedes) WHERE supersedes IS NOT NULL;
  CREATE TABLE repo_locks (forge TEXT NOT NULL, repo TEXT NOT NULL, owner TEXT NOT NULL, until INTEGER NOT NULL, PRIMARY KEY (forge, repo));
  CREATE TABLE stopped_adapters (forge TEXT NOT NULL, repo TEXT NOT NULL, folder TEXT NOT NULL, since INTEGER NOT NULL, PRIMARY KEY (forge, repo, folder));
  CREATE TABLE covered_owners (forge TEXT NOT NULL, owner TEXT NOT NULL, first_seen INTEGER NOT NULL, PRIMARY KEY (forge, owner));
  CREATE TABLE legacy_acks (forge TEXT NOT NULL, repo TEXT NOT NULL, comment_id TEXT NOT NULL, discussion INTEGER NOT NULL, ack_id TEXT NOT NULL, PRIMARY KEY (forge, repo, comment_id));
  ${WORKERS_TABLE}
`;

const tableExists = (db: Database.Database, name: string) => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;

/**
 * Brings the file to SCHEMA_VERSION, once and in one transaction (a crash leaves the old version whole, and
 * the next start migrates again). A file from a newer version is refused: this code would misread it.
 */
export function migrateSchema(db: Database.Database, path: string, options: { legacyJobKey?: LegacyJobKey } = {}): void {
  const migrate = db.transaction(() => {
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version === SCHEMA_VERSION) return;
    if (version > SCHEMA_VERSION) {
      throw new SafeLoraError(
        `${path} was written by a newer safe-lora (schema version ${version}; this one reads up to ${SCHEMA_VERSION}): run that version, or a newer one, on this DATA_DIR`,
        "damaged-state",
      );
    }
    if (!tableExists(db, "jobs")) db.exec(CURRENT_TABLES);
    else if (version === 0) fromVersion0(db, path, options.legacyJobKey);
    else fromVersion1(db);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  });
  migrate.immediate();
}

/** Version 1's file: two nullable job columns, the workers and uninstalled tables; nothing else changes. */
function fromVersion1(db: Database.Database): void {
  db.exec(`ALTER TABLE jobs ADD COLUMN supersedes TEXT; ALTER TABLE jobs ADD COLUMN needs TEXT;
    CREATE INDEX jobs_supersedes ON jobs (supersedes) WHERE supersedes IS NOT NULL; ${WORKERS_TABLE}`);
}

interface Version0Job {
  id: number;
  key: string;
  kind: string;
  repo: string;
  payload: string;
}

/** The first release's file: every job and remembered thing carried over onto the Hub forge, none dropped. */
function fromVersion0(db: Database.Database, path: string, legacyJobKey: LegacyJobKey | undefined): void {
  const jobs = db.prepare("SELECT id, key, kind, repo, payload FROM jobs").all() as Version0Job[];
  if (jobs.length > 0 && !legacyJobKey) {
    throw new SafeLoraError(
      `${path} was written by an older safe-lora (schema version 0) and must be upgraded: start the bot (safe-lora serve or worker) on this DATA_DIR once, which upgrades it in place`,
      "damaged-state",
    );
  }
  db.exec("ALTER TABLE jobs RENAME TO jobs_v0; DROP INDEX IF EXISTS jobs_runnable; DROP INDEX IF EXISTS jobs_repo;");
  for (const table of ["covered_owners"]) if (tableExists(db, table)) db.exec(`ALTER TABLE ${table} RENAME TO ${table}_v0`);
  db.exec(CURRENT_TABLES);
  const keyOf = (job: Version0Job) => {
    let payload: unknown;
    try {
      payload = JSON.parse(job.payload);
    } catch {
      payload = undefined;
    }
    // A job the bot cannot name (damaged, or of no kind it knows) keeps a key of its own, and fails when it runs.
    return legacyJobKey?.({ kind: job.kind, key: job.key, repo: job.repo, payload }) ?? jobKey(job.kind, "hub", "legacy", job.key);
  };
  const insert = db.prepare(
    `INSERT INTO jobs (id, key, kind, forge, repo, private, payload, state, attempts, run_after, lease_owner, lease_until, result, error, created_at, started_at, finished_at)
     SELECT id, @key, kind, 'hub', repo, private, payload, state, attempts, run_after, lease_owner, lease_until, result, error, created_at, started_at, finished_at
     FROM jobs_v0 WHERE id = @id`,
  );
  for (const job of jobs) insert.run({ id: job.id, key: keyOf(job) });
  // A job running when the old bot stopped keeps its lease: it is taken again once the lease runs out, as before.
  if (tableExists(db, "stopped")) db.exec("INSERT INTO stopped_adapters (forge, repo, folder, since) SELECT 'hub', repo, folder, since FROM stopped; DROP TABLE stopped;");
  if (tableExists(db, "covered_owners_v0")) db.exec("INSERT INTO covered_owners (forge, owner, first_seen) SELECT 'hub', owner, first_seen FROM covered_owners_v0; DROP TABLE covered_owners_v0;");
  if (tableExists(db, "acks")) db.exec("INSERT INTO legacy_acks (forge, repo, comment_id, discussion, ack_id) SELECT 'hub', repo, comment_id, discussion, ack_id FROM acks; DROP TABLE acks;");
  // Posted notices carry their key in a hidden marker on the Hub, where the bot now looks for them.
  if (tableExists(db, "notices")) db.exec("DROP TABLE notices;");
  db.exec("DROP TABLE jobs_v0;");
}
