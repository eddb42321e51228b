import { z } from "zod";

/** Version-3 Hub webhook payloads, as documented and as in shared/hub-payloads/. Unknown fields are allowed. */
const Repo = z.looseObject({
  type: z.enum(["model", "dataset", "space"]),
  name: z.string().regex(/^[\w.-]+\/[\w.-]+$/),
  id: z.string(),
  private: z.boolean(),
  headSha: z.string().optional(),
  owner: z.looseObject({ id: z.string() }),
});

const Discussion = z.looseObject({
  id: z.string(),
  num: z.number().int().positive(),
  title: z.string(),
  status: z.string(),
  isPullRequest: z.boolean(),
  author: z.looseObject({ id: z.string() }),
});

const Comment = z.looseObject({
  id: z.string(),
  author: z.looseObject({ id: z.string() }),
  // Absent when the comment is hidden.
  content: z.string().optional(),
  hidden: z.boolean().optional(),
});

const Webhook = z.looseObject({ id: z.string(), version: z.literal(3) });

export const RepoContentEvent = z.looseObject({
  event: z.looseObject({ action: z.literal("update"), scope: z.literal("repo.content") }),
  repo: Repo,
  webhook: Webhook,
  updatedRefs: z.array(z.looseObject({ ref: z.string(), oldSha: z.string().nullable(), newSha: z.string().nullable() })).default([]),
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
  const describe = (error: z.ZodError) => {
    const issue = error.issues[0]!;
    return `${issue.path.join(".") || "payload"}: ${issue.message}`;
  };
  const envelope = Envelope.safeParse(json);
  if (!envelope.success) return { ok: false, reason: describe(envelope.error) };
  const scope = envelope.data.event.scope;
  if (scope === "repo.content") {
    const parsed = RepoContentEvent.safeParse(json);
    return parsed.success ? { ok: true, webhook: { scope, payload: parsed.data } } : { ok: false, reason: describe(parsed.error) };
  }
  if (scope === "discussion" || scope === "discussion.comment") {
    const parsed = DiscussionEvent.safeParse(json);
    return parsed.success ? { ok: true, webhook: { scope: "discussion", payload: parsed.data } } : { ok: false, reason: describe(parsed.error) };
  }
  const parsed = OtherEvent.safeParse(json);
  return parsed.success ? { ok: true, webhook: { scope: "other", payload: parsed.data } } : { ok: false, reason: describe(parsed.error) };
}
