import type { JobHandler, JobVerdict, RunnerLog, RunningJob } from "./job-queue.js";

/**
 * Runs one job's handler while `renew` keeps its hold (lease, repo lock) every `everyMs`: the handler's signal
 * aborts when a renewal says the hold is gone (another worker has the job now) or `outer` aborts. A handler
 * that throws is a bug, which may have been a fluke: its verdict is a retry. Both queue backends' runners use it.
 */
export async function runHandler(params: {
  readonly handler: JobHandler;
  readonly job: RunningJob;
  readonly controller: AbortController;
  readonly renew: () => Promise<boolean>;
  readonly everyMs: number;
  readonly log: RunnerLog | undefined;
}): Promise<JobVerdict> {
  const { handler, job, controller, renew, log } = params;
  const heartbeat = setInterval(() => {
    void renew()
      .then((ours) => {
        if (!ours) controller.abort(new Error("the job's lease was lost to another worker"));
      })
      .catch((error: unknown) => log?.error({ err: error, job: job.id }, "could not renew a job's lease"));
  }, Math.max(100, params.everyMs));
  try {
    return await handler(job, controller.signal);
  } catch (error) {
    return { verdict: "retry", error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearInterval(heartbeat);
  }
}
