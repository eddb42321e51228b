import { ruleOf, SafeLoraError } from "../errors.js";
import type { Forge, ForgeName } from "../forge/forge.js";
import type { JobHandler, JobVerdict } from "../queue/job-queue.js";
import type { BotContext } from "./context.js";
import { jobKind } from "./job-kinds.js";
import { resultOutcome } from "./job-outcome.js";
import { redactRepo, repoLogFields } from "./log-fields.js";

/**
 * The bot's side of running a job, for the queue's runner: check the stored payload against its kind's schema,
 * run it under the operator's time limit, and say by the error table (src/errors.ts) what became of it —
 * done, refused (done for the queue: nothing to retry, but nothing patched), retried, or failed. Every job is
 * written so that running it twice does no harm (see patch-job.ts): the runner delivers at least once.
 */
export function jobHandler(context: BotContext): JobHandler {
  return async (job, signal): Promise<JobVerdict> => {
    const { log, metrics } = context;
    const started = performance.now();
    const { maxRunMinutes } = context.config.limits;
    const overTime = new AbortController();
    const deadline = setTimeout(
      () =>
        overTime.abort(
          new SafeLoraError(`the job took longer than the limit of ${maxRunMinutes} minutes (limits.maxRunMinutes)`, "limit-exceeded", {
            fix: { kind: "raise-limit", limit: "maxRunMinutes" },
          }),
        ),
      maxRunMinutes * 60_000,
    );
    // Every line about a private repo's job leaves its name out, whatever the line says.
    const jobLog = log.child({ job: job.id, kind: job.kind, attempt: job.attempts, ...repoLogFields(job.repo, job.private) });
    const scrub = (text: string) => redactRepo(text, job.repo, job.private);
    jobLog.info("job started");
    let outcome = "done";
    // Set when the job leaves the queue for good (done or failed), not when it is only put back for a retry.
    let finished: string | null = null;
    try {
      // A stored job that no longer reads as its kind (a damaged row) fails alone, at once: retrying changes nothing.
      const definition = jobKind(job.kind);
      const parsed = definition?.payload.safeParse(job.payload);
      if (!definition || !parsed?.success) {
        const problem = parsed?.error?.issues[0]?.message ?? (definition ? "invalid payload" : "unknown kind");
        outcome = "damaged";
        finished = "failed";
        jobLog.error({ problem }, "job damaged");
        return { verdict: "fail", error: `the stored job is damaged (${problem}); push or comment again to queue a new one` };
      }
      if (await context.memory.isUninstalled({ forge: job.forge, repo: job.repo })) {
        // Installing was the consent, removing it withdraws it: nothing of the repo is read or written.
        const refusal = new SafeLoraError("the bot's app was removed from this repository; install it there again to have its adapters covered", "not-installed");
        outcome = finished = "refused";
        jobLog.info({ reason: refusal.message }, "job refused");
        return { verdict: "done", result: { outcome: "refused", reason: refusal.message, code: refusal.code } };
      }
      const forge = forgeOf(context, job.forge);
      if (typeof forge === "string") {
        outcome = "error";
        finished = "failed";
        jobLog.error({ problem: forge }, "job failed");
        return { verdict: "fail", error: forge };
      }
      const result = await definition.run(context, {
        id: job.id,
        forge,
        repo: job.repo,
        private: job.private,
        attempts: job.attempts,
        supersededBy: job.supersededBy,
        payload: parsed.data,
        signal: AbortSignal.any([signal, overTime.signal]),
      });
      outcome = finished = resultOutcome(result);
      jobLog.info({ result: JSON.parse(scrub(JSON.stringify(result ?? null))) as unknown }, "job done");
      return { verdict: "done", result };
    } catch (error) {
      const rule = ruleOf(error);
      const message = error instanceof Error ? error.message : String(error);
      if (rule.fault === "user" && error instanceof SafeLoraError) {
        // Nothing a retry would change (a deleted repo, a bad config file): record why, and stop.
        outcome = finished = "refused";
        jobLog.info({ reason: scrub(error.message) }, "job refused");
        return { verdict: "done", result: { outcome: "refused", reason: error.message, code: error.code } };
      }
      const err = job.private ? { type: error instanceof Error ? error.name : typeof error, message: scrub(message) } : error;
      if (!rule.retry) {
        // The operator's to fix (e.g. the bot's own database), and a retry would meet the same.
        outcome = "error";
        finished = "failed";
        jobLog.error({ err }, "job failed");
        return { verdict: "fail", error: message };
      }
      // The forge's for a moment, the machine's, or a bug: tried again with backoff, up to the last attempt.
      const transient = rule.fault === "forge";
      outcome = transient ? "retry" : "error";
      if (job.retryInMs === null) finished = "failed";
      jobLog[transient ? "warn" : "error"]({ err, retryInMs: job.retryInMs }, "job failed");
      return { verdict: "retry", error: message };
    } finally {
      clearTimeout(deadline);
      metrics.jobDuration.observe({ kind: job.kind, outcome }, (performance.now() - started) / 1000);
      if (finished) metrics.jobsFinished.inc({ kind: job.kind, outcome: finished });
    }
  };
}

/** The forge a job's repo lives on, or why the bot cannot run it there (it does not serve that forge). */
function forgeOf(context: BotContext, name: ForgeName): Forge | string {
  try {
    return context.forges.get(name);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
