import type { ForgeName } from "../forge/forge.js";
import type { Job, JobState } from "./job-queue.js";

/** A row of `jobs`, as the SQLite queue and its runner read it. */
export interface JobRow {
  id: number;
  key: string;
  kind: string;
  forge: ForgeName;
  repo: string;
  private: number;
  payload: string;
  supersedes: string | null;
  needs: string | null;
  state: JobState;
  attempts: number;
  run_after: number;
  result: string | null;
  error: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

/** A stored JSON column, or `undefined` when the text is not JSON (a damaged row must not break every read). */
export function storedJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export const jobOfRow = (row: JobRow): Job => ({
  id: String(row.id),
  key: row.key,
  kind: row.kind,
  forge: row.forge,
  repo: row.repo,
  private: row.private === 1,
  payload: storedJson(row.payload),
  supersedes: row.supersedes,
  needs: row.needs === "gpu" ? "gpu" : null,
  state: row.state,
  attempts: row.attempts,
  runAfter: row.run_after,
  result: storedJson(row.result) ?? null,
  error: row.error,
  createdAt: row.created_at,
  startedAt: row.started_at,
  finishedAt: row.finished_at,
});

/** The row id a job id names, or null for an id this queue never gave out. */
export const rowIdOf = (id: string): number | null => (/^[1-9]\d{0,15}$/.test(id) ? Number(id) : null);
