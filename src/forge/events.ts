import type { z } from "zod";
import type { ForgeName } from "./forge.js";

/**
 * What a forge's webhook asks of the bot, once that forge's own translation has checked it (the Hub's in
 * src/hub/hub-webhook.ts): the bot's intake sees only these, never a forge's payloads, ref names or scopes.
 */
export type ForgeEvent = PushEvent | CommentEvent | IgnoredEvent;

/** Fields every event about a repo carries. */
interface RepoEvent {
  readonly forge: ForgeName;
  /** The repo id, checked by the translation (`org/name`). */
  readonly repo: string;
  readonly private: boolean;
}

/** A new head of the repo's default branch. */
export interface PushEvent extends RepoEvent {
  readonly kind: "push";
  /** The new head's commit sha. */
  readonly sha: string;
}

/**
 * A new comment on a discussion or pull request (`kind: "comment"`), or a new discussion or pull request,
 * whose opening message is its first comment (`kind: "discussion"`).
 */
export interface CommentEvent extends RepoEvent {
  readonly kind: "comment" | "discussion";
  /** The number of the discussion or pull request. */
  readonly discussion: number;
  readonly isPullRequest: boolean;
  readonly commentId: string;
  /** The author's account id (webhooks carry no usernames everywhere); the bot's own is ignored. */
  readonly authorId: string;
  /** The comment's text; "" when hidden. */
  readonly content: string;
  /** Hidden by a moderator (or its text withheld): never acted on. */
  readonly hidden: boolean;
}

/** Nothing to do, and why. `repo` is set when the event came from a repo the bot may cover (its owner installed the webhook). */
export interface IgnoredEvent {
  readonly kind: "ignored";
  readonly reason: string;
  readonly forge: ForgeName;
  readonly repo?: string;
}

/** Why a forge's webhook payload did not pass its schema: the first issue's path and message, for the 400 answer. */
export function payloadProblem(error: z.ZodError): string {
  const issue = error.issues[0]!;
  return `${issue.path.join(".") || "payload"}: ${issue.message}`;
}
