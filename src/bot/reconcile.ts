import type { JobContext } from "./context.js";
import { scanJobFor } from "./scan-job.js";

/**
 * Queues a scan of the current head of every repo of `owners` (organisations, users or repo ids). Heads
 * already scanned make no new job (same key), so this only catches what webhooks missed — the Hub does not
 * document retries and caps a webhook at 1,000 triggers a day — or what existed before the bot.
 */
export async function queueScans(context: Pick<JobContext, "forge" | "queue" | "config">, owners: readonly string[], reason: "reconcile" | "backfill"): Promise<{ repos: number; queued: number }> {
  let repos = 0;
  let queued = 0;
  for (const owner of owners) {
    for (const head of await context.forge.reposOf(owner)) {
      if (context.config.excludeRepos.includes(head.repo)) continue;
      repos++;
      const { created } = await context.queue.enqueue(scanJobFor({ forge: context.forge.name, repo: head.repo, sha: head.sha, private: head.private, reason }));
      if (created) queued++;
    }
  }
  return { repos, queued };
}
