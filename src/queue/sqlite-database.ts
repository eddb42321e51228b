import Database from "better-sqlite3";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { SafeLoraError } from "../errors.js";
import type { LegacyJobKey } from "./job-key.js";
import { migrateSchema } from "./sqlite-schema.js";

/**
 * Written beside the database once its tables exist. A database file that is missing or has no tables while
 * this marker is there was emptied or replaced, not new: starting on it would silently forget every stopped
 * adapter and queued job, so it is refused instead.
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
 * The bot's SQLite file under DATA_DIR (or `:memory:`), checked, in WAL mode (so `serve` and separate `worker`
 * processes can share it), with its schema brought to this version's: the queue, the runner's leases and
 * locks, and the bot's memory all live on this one handle.
 */
export function openBotDatabase(path: string, options: { legacyJobKey?: LegacyJobKey } = {}): Database.Database {
  const onDisk = path !== ":memory:";
  if (onDisk) mkdirSync(dirname(path), { recursive: true });
  const db = onDisk ? openChecked(path) : new Database(path);
  try {
    const hasTables = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").get() !== undefined;
    if (onDisk && !hasTables && existsSync(markerPathOf(path))) {
      throw new SafeLoraError(
        `${path} holds no tables, but this DATA_DIR had a queue there (${markerPathOf(path)} exists): the database was emptied or replaced. ` +
          `Restore it from a backup; to start afresh on purpose (the bot then forgets stopped adapters and queued jobs), delete both files`,
        "damaged-state",
      );
    }
    db.pragma("journal_mode = WAL");
    db.pragma("busy_timeout = 5000");
    db.pragma("synchronous = FULL");
    migrateSchema(db, path, options);
  } catch (error) {
    db.close();
    throw error;
  }
  if (onDisk && !existsSync(markerPathOf(path))) {
    writeFileSync(markerPathOf(path), `The safe-lora bot's queue ${path} was created here; see the README (Reliability) before deleting this file.\n`);
  }
  return db;
}
