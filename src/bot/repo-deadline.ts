import type { JobLimits } from "../config/bot-config.js";
import { SafeLoraError } from "../errors.js";

/**
 * The repo's own time limit for a job, next to the job's signal: the job handler (run-job.ts) enforces the
 * operator's maxRunMinutes; a repo's own (lower) value is known only once its configuration is read. `clear`
 * must be called on every way out; the timer never keeps a stopping process alive.
 */
export function repoDeadline(limits: Pick<JobLimits, "maxRunMinutes">, jobSignal: AbortSignal | undefined): { signal: AbortSignal; clear(): void } {
  const deadline = new AbortController();
  const timer = setTimeout(
    () =>
      deadline.abort(
        new SafeLoraError(`the job took longer than the limit of ${limits.maxRunMinutes} minutes (limits.maxRunMinutes)`, "limit-exceeded", {
          fix: { kind: "raise-limit", limit: "maxRunMinutes" },
        }),
      ),
    limits.maxRunMinutes * 60_000,
  );
  timer.unref();
  return { signal: jobSignal ? AbortSignal.any([jobSignal, deadline.signal]) : deadline.signal, clear: () => clearTimeout(timer) };
}
