import { z } from "zod";

/**
 * The parts of GitHub's REST answers the forge reads, checked at the edge: octokit's types say what GitHub
 * documents, these say what actually came. Texts are capped above GitHub's own limits (65,536 characters a body).
 */
const Sha = z.string().regex(/^[0-9a-f]{40}$/);
const Body = z.string().max(262_144).nullish();

export const GithubAccount = z.looseObject({ login: z.string().min(1).max(100), id: z.number().int() });
export type GithubAccount = z.infer<typeof GithubAccount>;

export const GithubRepo = z.looseObject({
  full_name: z.string().max(200),
  private: z.boolean(),
  default_branch: z.string().min(1).max(255),
  owner: GithubAccount,
});
export type GithubRepo = z.infer<typeof GithubRepo>;

export const GithubRef = z.looseObject({ ref: z.string(), object: z.looseObject({ sha: Sha, type: z.string() }) });

export const GithubShaObject = z.looseObject({ sha: Sha });

export const GithubTag = z.looseObject({ object: GithubShaObject });

export const GithubCommit = z.looseObject({ sha: Sha, tree: GithubShaObject });

/** A file of the contents API; `content` is empty (encoding "none") for files over 1 MB. */
export const GithubContentFile = z.looseObject({ type: z.literal("file"), size: z.number().int().nonnegative(), encoding: z.string(), content: z.string().max(2 * 1024 * 1024) });

export const GithubPull = z.looseObject({
  number: z.number().int().positive(),
  state: z.enum(["open", "closed"]),
  draft: z.boolean().optional(),
  merged_at: z.string().nullish(),
  body: Body,
  user: GithubAccount.nullable(),
  head: z.looseObject({ ref: z.string().max(255), sha: Sha }),
});
export type GithubPull = z.infer<typeof GithubPull>;

export const GithubIssue = z.looseObject({
  number: z.number().int().positive(),
  state: z.enum(["open", "closed"]),
  draft: z.boolean().optional(),
  body: Body,
  user: GithubAccount.nullable(),
  pull_request: z.looseObject({ merged_at: z.string().nullish() }).optional(),
  closed_by: GithubAccount.nullish(),
});
export type GithubIssue = z.infer<typeof GithubIssue>;

export const GithubComment = z.looseObject({
  id: z.number().int().positive(),
  body: Body,
  user: GithubAccount.nullable(),
  issue_url: z.string().max(2048),
});
export type GithubComment = z.infer<typeof GithubComment>;

export const GithubPermission = z.looseObject({ permission: z.string(), role_name: z.string().optional() });

export const GithubInstallationRepos = z.looseObject({ repositories: z.array(GithubRepo) });
