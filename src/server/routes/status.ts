import type { BotContext } from "../../bot/context.js";
import { resultOutcome, type JobOutcome } from "../../bot/job-outcome.js";
import { HTML, send } from "../http.js";
import type { Route, RouteDeps } from "../route.js";
import { renderStatusPage } from "../status-page.js";

/** Finished jobs of all time by outcome: done jobs by their result, plus failed ones. */
async function outcomeTotals(context: BotContext): Promise<Partial<Record<JobOutcome, number>>> {
  const totals: Partial<Record<JobOutcome, number>> = {};
  for (const [name, n] of Object.entries(await context.queue.doneOutcomes())) {
    const outcome = resultOutcome({ outcome: name });
    totals[outcome] = (totals[outcome] ?? 0) + n;
  }
  const failed = (await context.queue.counts()).failed;
  if (failed > 0) totals.failed = failed;
  return totals;
}

/** GET /: the status page, the recent jobs (private repos redacted unless STATUS_TOKEN is presented). */
export function statusRoute({ context, options, formToken, isOperator }: RouteDeps): Route {
  return {
    method: "GET",
    path: "/",
    async handle(request, response, url) {
      const operator = isOperator(request, url);
      const page = renderStatusPage(await context.queue.recent(50), {
        authorized: operator,
        formToken,
        // The operator's token rides along with the form they post, as it came with the page they opened.
        formAction: operator && options.statusToken ? `/request?token=${encodeURIComponent(options.statusToken)}` : "/request",
        botName: context.forges.get("hub").bot.name,
        prUrl: (repo, num) => context.forges.get("hub").pullRequestUrl(repo, num),
        totals: await outcomeTotals(context),
        workers: await context.queue.workers(),
      });
      send(response, 200, page, HTML);
    },
  };
}
