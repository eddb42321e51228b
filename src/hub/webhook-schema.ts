import { z } from "zod";
import { payloadProblem } from "../forge/events.js";
import { isRepoId } from "./repo-ref.js";

/**
 * Every field that becomes part of a URL or a job is checked here, before anything is stored: a repo id
 * like `acme/..` would be normalised by the URL parser into another endpoint, and a sha that is not one
 * would be sent to the Hub (with the bot's token) and retried as if the Hub were down.
 */
const RepoName = z.string().max(200).refine(isRepoId, "must be a repo id like org/name");
const Sha = z.string().regex(/^[0-9a-f]{40}$/, "must be a 40-character hex commit sha");
/** Hub object ids (24 hex characters today); kept loose but bounded, since they become keys and URL segments. */
const ObjectId = z.string().regex(/^[\w-]{1,64}$/, "must be a Hub object id");

/** Version-3 Hub webhook payloads, as documented and as in test/fixtures/hub-payloads/. Unknown fields are allowed. */
const Repo = z.looseObject({
  type: z.enum(["model", "dataset", "space"]),
  name: RepoName,
  id: ObjectId,
  private: z.boolean(),
  headSha: Sha.optional(),
  owner: z.looseObject({ id: ObjectId }),
});

const Discussion = z.looseObject({
  id: ObjectId,
  num: z.number().int().positive().max(1e9),
  title: z.string().max(1000),
  status: z.string().max(50),
  isPullRequest: z.boolean(),
  author: z.looseObject({ id: ObjectId }),
});

const Comment = z.looseObject({
  id: ObjectId,
  author: z.looseObject({ id: ObjectId }),
  // Absent when the comment is hidden. The Hub caps comments far below this; it bounds what a job stores.
  content: z.string().max(65_536).optional(),
  hidden: z.boolean().optional(),
});

const Webhook = z.looseObject({ id: ObjectId, version: z.literal(3) });

export const RepoContentEvent = z.looseObject({
  event: z.looseObject({ action: z.literal("update"), scope: z.literal("repo.content") }),
  repo: Repo,
  webhook: Webhook,
  updatedRefs: z.array(z.looseObject({ ref: z.string().max(256), oldSha: Sha.nullable(), newSha: Sha.nullable() })).max(1000).default([]),
});

export const DiscussionEvent = z.looseObject({
  event: z.looseObject({ action: z.string(), scope: z.enum(["discussion", "discussion.comment"]) }),
  repo: Repo,
  discussion: Discussion,
  comment: Comment.optional(),
  webhook: Webhook,
});

/** Everything else the Hub may send (repo create/delete, config changes): acknowledged and ignored. */
export const OtherEvent = z.looseObject({
  event: z.looseObject({ action: z.string(), scope: z.string() }),
  repo: Repo,
  webhook: Webhook,
});

export type RepoContentEvent = z.infer<typeof RepoContentEvent>;
export type DiscussionWebhook = z.infer<typeof DiscussionEvent>;
export type OtherWebhook = z.infer<typeof OtherEvent>;

export type HubWebhook =
  | { scope: "repo.content"; payload: RepoContentEvent }
  | { scope: "discussion"; payload: DiscussionWebhook }
  | { scope: "other"; payload: OtherWebhook };

const Envelope = z.looseObject({ event: z.looseObject({ scope: z.string(), action: z.string() }) });

/** Validates a payload by its `event.scope`, so a malformed known event is an error, not "some other event". */
export function parseHubWebhook(json: unknown): { ok: true; webhook: HubWebhook } | { ok: false; reason: string } {
  const envelope = Envelope.safeParse(json);
  if (!envelope.success) return { ok: false, reason: payloadProblem(envelope.error) };
  const scope = envelope.data.event.scope;
  if (scope === "repo.content") {
    const parsed = RepoContentEvent.safeParse(json);
    return parsed.success ? { ok: true, webhook: { scope, payload: parsed.data } } : { ok: false, reason: payloadProblem(parsed.error) };
  }
  if (scope === "discussion" || scope === "discussion.comment") {
    const parsed = DiscussionEvent.safeParse(json);
    return parsed.success ? { ok: true, webhook: { scope: "discussion", payload: parsed.data } } : { ok: false, reason: payloadProblem(parsed.error) };
  }
  const parsed = OtherEvent.safeParse(json);
  return parsed.success ? { ok: true, webhook: { scope: "other", payload: parsed.data } } : { ok: false, reason: payloadProblem(parsed.error) };
}
