import { HubApiError } from "@huggingface/hub";
import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import { hubParams, type HubAccess } from "./hub-access.js";

/**
 * The Hub's discussions and pull-requests API (which @huggingface/hub does not cover), as huggingface_hub
 * calls it: list, details with events, create, comment, edit a comment, change status; and organisation
 * members. Every response is parsed with zod; a refusal is @huggingface/hub's own HubApiError (status, URL,
 * request id, the Hub's message), so it is explained and retried like every other Hub call's.
 */

const Author = z.looseObject({ name: z.string(), _id: z.string().optional() });

export const DiscussionSummary = z.looseObject({
  num: z.number().int(),
  title: z.string(),
  status: z.enum(["open", "closed", "merged", "draft"]),
  isPullRequest: z.boolean(),
  author: Author.nullish(),
  createdAt: z.string(),
});
export type DiscussionSummary = z.infer<typeof DiscussionSummary>;

const DiscussionList = z.looseObject({ discussions: z.array(DiscussionSummary), count: z.number().int(), start: z.number().int() });

export const DiscussionEvent = z.looseObject({
  id: z.string(),
  type: z.string(),
  createdAt: z.string(),
  author: Author.nullish(),
  data: z
    .looseObject({
      latest: z.looseObject({ raw: z.string() }).optional(),
      hidden: z.boolean().optional(),
      status: z.string().optional(),
      oid: z.string().optional(),
    })
    .optional(),
});
export type DiscussionEvent = z.infer<typeof DiscussionEvent>;

export const DiscussionDetails = DiscussionSummary.extend({
  events: z.array(DiscussionEvent),
  changes: z.looseObject({ base: z.string().optional(), headCommitId: z.string().optional() }).optional(),
});
export type DiscussionDetails = z.infer<typeof DiscussionDetails>;

const CommentResponse = z.looseObject({ newMessage: z.looseObject({ id: z.string() }) });
const CreateResponse = z.looseObject({ num: z.number().int() });
const Members = z.array(z.looseObject({ user: z.string() }));

async function call<T>(access: HubAccess, path: string, schema: z.ZodType<T>, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const { hubUrl } = hubParams(access);
  const url = `${hubUrl}${path}`;
  const response = await hubParams(access).fetch(url, {
    method: init.method ?? "GET",
    headers: {
      Accept: "application/json",
      ...(access.accessToken ? { Authorization: `Bearer ${access.accessToken}` } : {}),
      ...(init.body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await response.text();
  if (!response.ok) {
    let message = text.slice(0, 300);
    let data: Record<string, unknown> = { message: text };
    try {
      const json: unknown = JSON.parse(text);
      if (typeof json === "object" && json !== null && !Array.isArray(json)) data = json as Record<string, unknown>;
    } catch {
      // not JSON: keep the text
    }
    if (typeof data.error === "string") message = data.error;
    const requestId = response.headers.get("X-Request-Id") ?? undefined;
    // The trailer as @huggingface/hub writes it, which explainHubError cuts off.
    const trailer = [`URL: ${url}`, ...(requestId ? [`Request ID: ${requestId}`] : [])].join(". ");
    const error = new HubApiError(url, response.status, requestId, `${init.method ?? "GET"} ${path}: ${response.status} ${message}. ${trailer}`);
    error.data = data as HubApiError["data"];
    throw error;
  }
  const parsed = schema.safeParse(text ? JSON.parse(text) : {});
  if (!parsed.success) {
    throw new SafeLoraError(`the Hub answered ${path} in an unexpected shape (${parsed.error.issues[0]?.message}); is HF_ENDPOINT a Hub?`, "hub-unavailable");
  }
  return parsed.data;
}

const base = (repo: string) => `/api/models/${repo}/discussions`;

/** Every discussion and pull request of a repo, newest first. */
export async function listDiscussions(access: HubAccess, repo: string): Promise<DiscussionSummary[]> {
  const all: DiscussionSummary[] = [];
  for (let page = 0; ; page++) {
    const { discussions, count } = await call(access, `${base(repo)}?p=${page}&type=all&status=all`, DiscussionList);
    all.push(...discussions);
    if (discussions.length === 0 || all.length >= count) return all;
  }
}

export function getDiscussion(access: HubAccess, repo: string, num: number): Promise<DiscussionDetails> {
  return call(access, `${base(repo)}/${num}`, DiscussionDetails);
}

/** Opens a plain discussion (not a pull request) and returns its number. */
export async function createDiscussion(
  access: HubAccess,
  params: {
    readonly repo: string;
    readonly title: string;
    /** Its opening message. */
    readonly description: string;
  },
): Promise<number> {
  const { repo, title, description } = params;
  return (await call(access, base(repo), CreateResponse, { method: "POST", body: { title, description, pullRequest: false } })).num;
}

/** Posts a comment and returns its id. */
export async function postComment(
  access: HubAccess,
  params: {
    readonly repo: string;
    /** The discussion's or pull request's number. */
    readonly num: number;
    readonly comment: string;
  },
): Promise<string> {
  return (await call(access, `${base(params.repo)}/${params.num}/comment`, CommentResponse, { method: "POST", body: { comment: params.comment } })).newMessage.id;
}

/** Replaces the text of a comment (the Hub lets its author only). */
export async function editComment(
  access: HubAccess,
  params: {
    readonly repo: string;
    /** The discussion's or pull request's number. */
    readonly num: number;
    readonly commentId: string;
    /** The new text. */
    readonly content: string;
  },
): Promise<void> {
  const { repo, num, commentId, content } = params;
  await call(access, `${base(repo)}/${num}/comment/${commentId}/edit`, z.unknown(), { method: "POST", body: { content } });
}

/** Opens or closes a discussion or pull request, with a comment posted along. */
export async function changeDiscussionStatus(
  access: HubAccess,
  params: {
    readonly repo: string;
    /** The discussion's or pull request's number. */
    readonly num: number;
    readonly status: "open" | "closed";
    readonly comment?: string;
  },
): Promise<void> {
  const { repo, num, status, comment } = params;
  await call(access, `${base(repo)}/${num}/status`, z.unknown(), { method: "POST", body: { status, ...(comment ? { comment } : {}) } });
}

/** Usernames of an organisation's members. */
export async function organizationMembers(access: HubAccess, org: string): Promise<string[]> {
  return (await call(access, `/api/organizations/${org}/members`, Members)).map((member) => member.user);
}
