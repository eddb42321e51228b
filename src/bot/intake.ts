import { parseComment } from "../commands/parse-comment.js";
import type { HubWebhook } from "../hub/webhook-schema.js";
import type { BotContext } from "./context.js";
import { commandKey } from "./command-job.js";
import { scanJobFor } from "./scan-job.js";

export interface IntakeResult {
  /** accepted: a job was stored; duplicate: it was stored before; ignored: nothing to do. */
  readonly outcome: "accepted" | "duplicate" | "ignored";
  readonly detail: string;
}

type IntakeContext = Pick<BotContext, "queue" | "forge" | "config" | "state">;

/**
 * Decides, without calling the Hub, what a webhook asks for, and stores the job before the HTTP answer.
 * Nothing the bot itself causes makes a job: it commits only to refs/pr/* (ignored), and its own
 * discussions and comments are recognised by its account id.
 */
export async function acceptWebhook(context: IntakeContext, webhook: HubWebhook): Promise<IntakeResult> {
  const { repo } = webhook.payload;
  if (repo.type !== "model") return { outcome: "ignored", detail: `not a model repo (${repo.type})` };
  if (context.config.excludeRepos.includes(repo.name)) return { outcome: "ignored", detail: "repo excluded by BOT_CONFIG" };
  // The delivery carried the secret, so its owner installed the webhook: the consent coversRepo() relies on.
  context.state.noteCoveredOwner(repo.name.split("/")[0]!);

  if (webhook.scope === "repo.content") {
    const main = webhook.payload.updatedRefs.find((ref) => ref.ref === "refs/heads/main");
    if (!main) return { outcome: "ignored", detail: "no update of refs/heads/main (pull request refs are ignored)" };
    if (!main.newSha) return { outcome: "ignored", detail: "main was deleted" };
    const { created } = await context.queue.enqueue(scanJobFor({ forge: "hub", repo: repo.name, sha: main.newSha, private: repo.private, reason: "push" }));
    return { outcome: created ? "accepted" : "duplicate", detail: `scan ${main.newSha.slice(0, 12)}` };
  }

  if (webhook.scope === "discussion") {
    const { discussion, comment, event } = webhook.payload;
    if (event.action !== "create" || !comment) return { outcome: "ignored", detail: `discussion ${event.action}` };
    if (comment.author.id === context.forge.bot.id) return { outcome: "ignored", detail: "the bot's own comment" };
    if (comment.hidden || comment.content === undefined) return { outcome: "ignored", detail: "hidden comment" };
    if (parseComment(comment.content, context.forge.bot.name).kind === "none") return { outcome: "ignored", detail: "does not mention the bot" };
    const { created } = await context.queue.enqueue({
      key: commandKey({ forge: "hub", repo: repo.name, commentId: comment.id }),
      kind: "command",
      forge: "hub",
      repo: repo.name,
      private: repo.private,
      payload: { repo: repo.name, discussion: discussion.num, isPullRequest: discussion.isPullRequest, commentId: comment.id, content: comment.content },
    });
    return { outcome: created ? "accepted" : "duplicate", detail: `command in #${discussion.num}` };
  }

  return { outcome: "ignored", detail: `${webhook.payload.event.scope} ${webhook.payload.event.action}` };
}
