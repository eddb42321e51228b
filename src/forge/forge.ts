import type { RepoFiles } from "../storage/repo-files.js";

/**
 * Where adapters live and pull requests are opened: the Hugging Face Hub today, GitHub (Probot) next.
 * The bot's jobs (src/bot/) speak only this interface, so they never know which forge they talk to.
 */
export interface Forge {
  /** The bot's own account: its comments and commits must never trigger work (no loops). */
  readonly bot: { readonly id: string; readonly name: string };
  /** The head of the default branch, and whether the repo is private. */
  head(repo: string): Promise<RepoHead>;
  /** The repo's files at one revision (branch, ref or sha), pinned to its commit. */
  open(repo: string, revision: string): Promise<PinnedRepo>;
  /** The bot's pull requests on a repo (found by the marker in their description), newest first. */
  pullRequests(repo: string): Promise<BotPullRequest[]>;
  /** Opens a pull request from `baseSha` with `files` added or replaced. */
  openPullRequest(repo: string, change: { baseSha: string; title: string; description: string; files: FileToCommit[] }): Promise<{ num: number; commit: string }>;
  /** Adds a commit on a pull request whose head is `parent`; `stale` when its head moved meanwhile. */
  pushToPullRequest(repo: string, num: number, change: { parent: string; title: string; files: FileToCommit[] }): Promise<{ commit: string } | "stale">;
  /** Replaces a pull request's description (its opening comment), e.g. to refresh its summary. */
  updateDescription(repo: string, num: number, text: string): Promise<void>;
  comment(repo: string, num: number, text: string): Promise<string>;
  editComment(repo: string, num: number, commentId: string, text: string): Promise<void>;
  closePullRequest(repo: string, num: number, comment: string): Promise<void>;
  /** Opens a plain discussion (not a pull request) and returns its number. */
  openDiscussion(repo: string, title: string, text: string): Promise<number>;
  /** The open plain discussions the bot itself opened (its notices), with their opening text; never anyone else's. */
  botDiscussions(repo: string): Promise<BotDiscussion[]>;
  /** Closes a plain discussion with a last comment. */
  closeDiscussion(repo: string, num: number, comment: string): Promise<void>;
  /** The username that wrote a comment, from the discussion's events (webhooks carry ids only). */
  commentAuthor(repo: string, num: number, commentId: string): Promise<string | null>;
  /** Whether `username` may command the bot on `repo` by membership: org member, or the owner of a user repo. */
  isMaintainer(repo: string, username: string): Promise<boolean>;
  /** Every model repo of an organisation or user, or the one repo named. */
  reposOf(owner: string): Promise<RepoHead[]>;
  /** A link a person can open. */
  pullRequestUrl(repo: string, num: number): string;
}

export interface RepoHead {
  readonly repo: string;
  readonly sha: string;
  readonly private: boolean;
}

export interface PinnedRepo extends RepoFiles {
  readonly sha: string;
  readonly private: boolean;
  /** Every file path at this revision. */
  paths(): string[];
}

export interface BotPullRequest {
  readonly num: number;
  readonly status: "open" | "closed" | "merged" | "draft";
  /** The adapter folder it covers ("." for the root), or "*" for a per-repo pull request. */
  readonly folder: string;
  /** Its description as it stands. */
  readonly description: string;
}

export interface BotDiscussion {
  readonly num: number;
  /** Its opening message as it stands (where the bot's hidden notice marker is). */
  readonly text: string;
}

export interface FileToCommit {
  readonly path: string;
  readonly content: Blob;
}

/** JSON inside an HTML comment (the bot's hidden markers): `<` and `>` escaped, so `-->` cannot close it. */
export function commentJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/>/g, "\\u003e");
}

/** The hidden marker in a bot pull request's description that says which folder it covers. */
export function pullRequestMarker(folder: string): string {
  return `<!-- safe-lora-bot:pull-request ${commentJson({ folder })} -->`;
}

export function readPullRequestMarker(text: string): string | null {
  const match = /<!-- safe-lora-bot:pull-request (\{.*?\}) -->/.exec(text);
  if (!match) return null;
  try {
    const folder = (JSON.parse(match[1]!) as { folder?: unknown }).folder;
    return typeof folder === "string" ? folder : null;
  } catch {
    return null;
  }
}
