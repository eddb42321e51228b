import { z } from "zod";

/** Request bodies the local GitHub accepts, as GitHub's REST reference documents them. */
export const AccessTokenBody = z
  .object({ repositories: z.array(z.string()).optional(), repository_ids: z.array(z.number().int()).optional(), permissions: z.record(z.string(), z.enum(["read", "write"])).optional() })
  .default({});
export const CreateRefBody = z.object({ ref: z.string().regex(/^refs\/.+/, "must start with refs/"), sha: z.string().regex(/^[0-9a-f]{40}$/) });
export const UpdateRefBody = z.object({ sha: z.string().regex(/^[0-9a-f]{40}$/), force: z.boolean().default(false) });
const Person = z.object({ name: z.string(), email: z.string(), date: z.string().optional() });
export const CreateCommitBody = z.object({
  message: z.string(),
  tree: z.string().regex(/^[0-9a-f]{40}$/),
  parents: z.array(z.string().regex(/^[0-9a-f]{40}$/)).default([]),
  author: Person.optional(),
  committer: Person.optional(),
});
export const CreateTreeBody = z.object({
  base_tree: z.string().regex(/^[0-9a-f]{40}$/).optional(),
  tree: z.array(
    z.object({
      path: z.string().min(1),
      mode: z.enum(["100644", "100755", "040000"]),
      type: z.enum(["blob", "tree"]).optional(),
      sha: z.string().regex(/^[0-9a-f]{40}$/).nullable().optional(),
      content: z.string().optional(),
    }),
  ),
});
export const CreateBlobBody = z.object({ content: z.string(), encoding: z.enum(["utf-8", "base64"]).default("utf-8") });
export const CreatePullBody = z.object({ title: z.string().min(1), head: z.string().min(1), base: z.string().min(1), body: z.string().nullable().optional(), draft: z.boolean().default(false) });
export const UpdatePullBody = z.object({ title: z.string().optional(), body: z.string().nullable().optional(), state: z.enum(["open", "closed"]).optional(), base: z.string().optional() });
export const CreateIssueBody = z.object({ title: z.string().min(1), body: z.string().nullable().optional() });
export const UpdateIssueBody = z.object({ title: z.string().optional(), body: z.string().nullable().optional(), state: z.enum(["open", "closed"]).optional(), state_reason: z.string().nullable().optional() });
/** GitHub's limit on an issue or comment body. */
export const MAX_BODY_CHARS = 65536;
export const CommentBody = z.object({ body: z.string().min(1).max(MAX_BODY_CHARS) });
export const REACTIONS = ["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"] as const;
export const ReactionBody = z.object({ content: z.enum(REACTIONS) });
export const LfsBatchBody = z.object({
  operation: z.enum(["download", "upload"]),
  transfers: z.array(z.string()).optional(),
  objects: z.array(z.object({ oid: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() })).max(1000),
  hash_algo: z.literal("sha256").optional(),
});
export const LfsVerifyBody = z.object({ oid: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() });
