import type { ForgeEvent } from "../forge/events.js";
import { parseHubWebhook, type HubWebhook } from "./webhook-schema.js";

/** The Hub's default branch: a push elsewhere (pull request refs included, where the bot commits) is no new head. */
const MAIN_REF = "refs/heads/main";

/**
 * A checked Hub webhook as the bot's normalised event. Only model repos count; a push counts when it moved
 * main; a discussion or comment when it was created (edits, status changes and the like are ignored).
 */
function hubEvent(webhook: HubWebhook): ForgeEvent {
  const { repo } = webhook.payload;
  if (repo.type !== "model") return { kind: "ignored", forge: "hub", reason: `not a model repo (${repo.type})` };
  const about = { forge: "hub" as const, repo: repo.name, private: repo.private };
  const ignored = (reason: string): ForgeEvent => ({ kind: "ignored", forge: "hub", repo: repo.name, reason });

  if (webhook.scope === "repo.content") {
    const main = webhook.payload.updatedRefs.find((ref) => ref.ref === MAIN_REF);
    if (!main) return ignored(`no update of ${MAIN_REF} (pull request refs are ignored)`);
    if (!main.newSha) return ignored("main was deleted");
    return { kind: "push", ...about, sha: main.newSha };
  }

  if (webhook.scope === "discussion") {
    const { discussion, comment, event } = webhook.payload;
    if (event.action !== "create" || !comment) return ignored(`discussion ${event.action}`);
    return {
      // A new discussion arrives with its opening message in `comment`.
      kind: event.scope === "discussion" ? "discussion" : "comment",
      ...about,
      discussion: discussion.num,
      isPullRequest: discussion.isPullRequest,
      commentId: comment.id,
      authorId: comment.author.id,
      content: comment.content ?? "",
      hidden: comment.hidden === true || comment.content === undefined,
    };
  }

  return ignored(`${webhook.payload.event.scope} ${webhook.payload.event.action}`);
}

/** A Hub webhook's JSON body, checked (see webhook-schema.ts) and translated; `reason` names what is malformed. */
export function parseHubEvent(json: unknown): { ok: true; event: ForgeEvent } | { ok: false; reason: string } {
  const parsed = parseHubWebhook(json);
  return parsed.ok ? { ok: true, event: hubEvent(parsed.webhook) } : parsed;
}
