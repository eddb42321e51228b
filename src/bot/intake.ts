import { parseComment } from "../commands/parse-comment.js";
import type { ForgeEvent } from "../forge/events.js";
import type { BotContext } from "./context.js";
import { commandKey } from "./command-job.js";
import { scanJobFor } from "./scan-job.js";

export interface IntakeResult {
  /** accepted: a job was stored; duplicate: it was stored before; ignored: nothing to do. */
  readonly outcome: "accepted" | "duplicate" | "ignored";
  readonly detail: string;
}

type IntakeContext = Pick<BotContext, "queue" | "forges" | "config" | "memory">;

/**
 * Decides, without calling the forge, what an event asks for, and stores the job before the webhook is
 * answered. Nothing the bot itself causes makes a job: it commits only to pull request branches (no push of
 * the default branch), and its own discussions and comments are recognised by its account id.
 */
export async function acceptEvent(context: IntakeContext, event: ForgeEvent): Promise<IntakeResult> {
  if (event.repo === undefined) return { outcome: "ignored", detail: event.kind === "ignored" ? event.reason : event.kind };
  const { repo } = event;
  if (context.config.excludeRepos.includes(repo)) return { outcome: "ignored", detail: "repo excluded by BOT_CONFIG" };
  // The delivery carried the secret, so its owner installed the webhook: the consent coversRepo() relies on.
  await context.memory.noteCoveredOwner({ forge: event.forge, owner: repo.split("/")[0]! });

  switch (event.kind) {
    case "ignored":
      return { outcome: "ignored", detail: event.reason };
    case "push": {
      const { created } = await context.queue.enqueue(scanJobFor({ forge: event.forge, repo, sha: event.sha, private: event.private, reason: "push" }));
      return { outcome: created ? "accepted" : "duplicate", detail: `scan ${event.sha.slice(0, 12)}` };
    }
    case "comment":
    case "discussion": {
      const bot = context.forges.get(event.forge).bot;
      if (event.authorId === bot.id) return { outcome: "ignored", detail: "the bot's own comment" };
      if (event.hidden) return { outcome: "ignored", detail: "hidden comment" };
      if (parseComment(event.content, bot).kind === "none") return { outcome: "ignored", detail: "does not mention the bot" };
      const { created } = await context.queue.enqueue({
        key: commandKey({ forge: event.forge, repo, commentId: event.commentId }),
        kind: "command",
        forge: event.forge,
        repo,
        private: event.private,
        payload: { repo, discussion: event.discussion, isPullRequest: event.isPullRequest, commentId: event.commentId, content: event.content },
      });
      return { outcome: created ? "accepted" : "duplicate", detail: `command in #${event.discussion}` };
    }
  }
}
