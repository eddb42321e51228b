import type { Job } from "../queue/job-queue.js";

/**
 * How a finished job ended, for the operator (status page, /metrics, /healthz): a refused patch is "done" for
 * the queue — nothing to retry — but it patched nothing, and the operator must be able to tell.
 */
export const JOB_OUTCOMES = ["committed", "unchanged", "skipped", "refused", "failed", "done"] as const;
export type JobOutcome = (typeof JOB_OUTCOMES)[number];

const named = new Set<string>(JOB_OUTCOMES.filter((outcome) => outcome !== "done" && outcome !== "failed"));

/** The outcome named by a job's result (patch jobs name one; scans and commands are plain "done"). */
export function resultOutcome(result: unknown): JobOutcome {
  const outcome = (result as { outcome?: unknown } | null)?.outcome;
  return typeof outcome === "string" && named.has(outcome) ? (outcome as JobOutcome) : "done";
}

/** null while the job is queued or running. */
export function jobOutcome(job: Pick<Job, "state" | "result">): JobOutcome | null {
  if (job.state === "failed") return "failed";
  return job.state === "done" ? resultOutcome(job.result) : null;
}
