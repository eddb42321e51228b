import type { BotContext } from "../../bot/context.js";
import { send } from "../http.js";
import type { Route, RouteDeps } from "../route.js";

/**
 * The job counts: the queue's states, with the refused jobs counted apart from `done` — the queue has nothing
 * to retry for them, but they patched nothing, and an operator must see them.
 */
async function jobCounts(context: BotContext): Promise<Record<string, number>> {
  const counts = await context.queue.counts();
  const refused = (await context.queue.doneOutcomes()).refused ?? 0;
  return { queued: counts.queued, running: counts.running, done: counts.done - refused, refused, failed: counts.failed };
}

/** GET /healthz: ok with the job counts, or 503 while the queue cannot hand out jobs. */
export function healthzRoute({ context, isOperator }: RouteDeps): Route {
  return {
    method: "GET",
    path: "/healthz",
    async handle(request, response, url) {
      // Unhealthy while claims fail, so that a supervisor restarts the process (whose start check then names the damage).
      const health = context.queue.health();
      // The database's own words are for the operator (STATUS_TOKEN) and the log, not for anyone who asks.
      if (!health.ok) return send(response, 503, { status: "unhealthy", reason: isOperator(request, url) ? health.reason : "claiming jobs fails; see the bot's log", bot: context.forges.get("hub").bot.name });
      send(response, 200, { status: "ok", bot: context.forges.get("hub").bot.name, jobs: await jobCounts(context) });
    },
  };
}
