import { SafeLoraError } from "../errors.js";
import type { RepoFiles } from "../storage/repo-files.js";

/**
 * The forges the bot can serve. A repo is known by its forge and its id together: `acme/x` on the Hub and
 * `acme/x` on GitHub are two repos.
 */
export type ForgeName = "hub" | "github";

/**
 * Where adapters live and pull requests are opened: the Hugging Face Hub today, GitHub (Probot) next.
 * The bot's jobs (src/bot/) speak only this interface, so they never know which forge they talk to, nor its
 * ref names or URLs. Every failure of a forge reaches them as a SafeLoraError: the forge's own errors are
 * translated at its edge (`hub-not-found`, `hub-access`, `hub-unavailable`), so the bot decides on codes alone.
 */
export interface Forge {
  readonly name: ForgeName;
  /** The bot's own account: its comments and commits must never trigger work (no loops). */
  readonly bot: BotAccount;
  /** Where a repo keeps its Safe LoRA configuration on this forge (`safe-lora.yaml` on the Hub). */
  readonly repoConfigPath: string;
  /** The head of the default branch, and whether the repo is private. */
  head(repo: string): Promise<RepoHead>;
  /** The repo's files at one revision (branch, ref or sha), pinned to its commit. */
  open(params: OpenParams): Promise<PinnedRepo>;
  /** The revision `open` takes for a pull request's head: the forge's name for its branch. */
  pullRequestHead(repo: string, num: number): string;
  /** The bot's pull requests on a repo (found by the marker in their description), newest first. */
  pullRequests(repo: string): Promise<BotPullRequest[]>;
  /** Opens a pull request from `baseSha` with `files` added or replaced. */
  openPullRequest(params: OpenPullRequestParams): Promise<{ num: number; commit: string }>;
  /** Adds a commit on a pull request whose head is `parent`; `stale` when its head moved meanwhile. */
  pushToPullRequest(params: PushParams): Promise<{ commit: string } | "stale">;
  /** Replaces a pull request's description (its opening comment), e.g. to refresh its summary. */
  updateDescription(params: PullRequestText): Promise<void>;
  /** Comments on a discussion or pull request; returns the comment's id. */
  comment(params: DiscussionText): Promise<string>;
  editComment(params: EditCommentParams): Promise<void>;
  /** Closes a pull request with a last comment. */
  closePullRequest(params: CloseParams): Promise<void>;
  /** Opens a plain discussion (not a pull request) and returns its number. */
  openDiscussion(params: OpenDiscussionParams): Promise<number>;
  /** The open plain discussions the bot itself opened (its notices), with their opening text; never anyone else's. */
  botDiscussions(repo: string): Promise<BotDiscussion[]>;
  /**
   * The bot's own discussions and pull requests on a repo, of any status, with the messages the bot wrote in
   * each: where the bot reads back the hidden markers of what it already posted (its notices), so that it
   * posts each once whatever it remembers.
   */
  botThreads(repo: string): Promise<BotThread[]>;
  /** The bot's own messages on one discussion or pull request, oldest first (its acknowledgements carry markers). */
  listBotComments(params: DiscussionRef): Promise<BotComment[]>;
  /** Closes a plain discussion with a last comment. */
  closeDiscussion(params: CloseDiscussionParams): Promise<void>;
  /** The username that wrote a comment (webhooks may carry ids only); null when the comment is gone. */
  commentAuthor(params: CommentRef): Promise<string | null>;
  /** Acknowledges a comment at once with a reaction (👀), where the forge has reactions; the answer follows as a comment. */
  react?(params: CommentRef): Promise<void>;
  /** Whether `username` may command the bot on `repo` by membership: org member, or the owner of a user repo. */
  isMaintainer(params: { readonly repo: string; readonly username: string }): Promise<boolean>;
  /** Every model repo of an organisation or user, or the one repo named. */
  reposOf(owner: string): Promise<RepoHead[]>;
  /** A link to a pull request a person can open. */
  pullRequestUrl(repo: string, num: number): string;
  /** How to load a variant before its pull request is merged, and after. */
  tryVariant(params: TryVariantParams): TryVariant;
}

/** The forges a bot serves, by name: a job names its repo's forge, and the registry hands it out. */
export interface ForgeRegistry {
  /** The forge of that name; throws when the bot does not serve it (a job stored by another deployment). */
  get(name: ForgeName): Forge;
  /** Every forge served, for what spans them (health, logs). */
  all(): readonly Forge[];
}

/** A registry of the given forges; each under its own `name`. */
export function forgeRegistry(forges: readonly Forge[]): ForgeRegistry {
  const byName = new Map(forges.map((forge) => [forge.name, forge] as const));
  return {
    get(name) {
      const forge = byName.get(name);
      if (!forge) throw new SafeLoraError(`this bot does not serve the forge "${name}" (it serves ${[...byName.keys()].join(", ") || "none"}); configure it, or drop the job`, "usage");
      return forge;
    },
    all: () => [...byName.values()],
  };
}

export interface BotAccount {
  /** The account's id, as webhooks name authors. */
  readonly id: string;
  /** The account's username, as comments mention it. */
  readonly name: string;
  /** A slash command that addresses the bot too, at the start of a line (`/safe-lora repatch` on GitHub). */
  readonly slashCommand?: string;
}

export interface OpenParams {
  readonly repo: string;
  /** A branch, a ref (e.g. `pullRequestHead`'s) or a commit sha. */
  readonly revision: string;
}

export interface OpenPullRequestParams {
  readonly repo: string;
  /** The commit of the default branch the pull request starts from. */
  readonly baseSha: string;
  readonly title: string;
  /** The opening message (with the bot's hidden marker). */
  readonly description: string;
  /** Added or replaced in the first commit. */
  readonly files: readonly FileToCommit[];
}

export interface PushParams {
  readonly repo: string;
  readonly num: number;
  /** The head the commit goes on; the push is `stale` when the head is no longer this. */
  readonly parent: string;
  /** The commit's title. */
  readonly title: string;
  readonly files: readonly FileToCommit[];
}

export interface PullRequestText {
  readonly repo: string;
  readonly num: number;
  readonly text: string;
}

export interface DiscussionText {
  readonly repo: string;
  /** The discussion's or pull request's number. */
  readonly discussion: number;
  readonly text: string;
}

export interface CommentRef {
  readonly repo: string;
  /** The number of the discussion or pull request that holds the comment. */
  readonly discussion: number;
  readonly commentId: string;
}

export interface EditCommentParams extends CommentRef {
  /** The comment's new text, replacing the old. */
  readonly text: string;
}

export interface CloseParams {
  readonly repo: string;
  /** The pull request's number. */
  readonly num: number;
  /** The last comment, posted with the closing. */
  readonly comment: string;
}

export interface CloseDiscussionParams {
  readonly repo: string;
  /** The discussion's number. */
  readonly discussion: number;
  /** The last comment, posted with the closing. */
  readonly comment: string;
}

export interface OpenDiscussionParams {
  readonly repo: string;
  readonly title: string;
  /** The opening message. */
  readonly text: string;
}

export interface TryVariantParams {
  readonly repo: string;
  /** The variant's folder in the repo ("." never: a variant always has a folder). */
  readonly subfolder: string;
  /** The aligned model the adapter is loaded on (its id, as the report records it). */
  readonly aligned: string;
  /** The pull request's number; null while it is being opened. */
  readonly num: number | null;
}

export interface TryVariant {
  /** The code block's language. */
  readonly language: string;
  /** Code that loads the variant from the pull request's head. */
  readonly beforeMerging: string;
  /** One line that loads it once merged. */
  readonly afterMerging: string;
  /** How that line differs from the code before merging, in Markdown (the forge's own terms). */
  readonly afterMergingNote: string;
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

export interface DiscussionRef {
  readonly repo: string;
  /** The discussion's or pull request's number. */
  readonly discussion: number;
}

/** A message the bot wrote: a comment, or the opening message of what it opened. */
export interface BotComment {
  readonly id: string;
  /** As it stands now (after edits). */
  readonly text: string;
}

export interface BotThread {
  readonly num: number;
  readonly isPullRequest: boolean;
  readonly status: BotPullRequest["status"];
  /** Closed, and by the bot itself (it resolved its notice), not by someone else. */
  readonly closedByBot: boolean;
  /** The bot's messages in it, oldest first, its opening message included. */
  readonly messages: readonly BotComment[];
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

/** A hidden marker the bot writes into its messages: `<!-- safe-lora-bot:<name> {json} -->`, invisible once rendered. */
export function botMarker(name: string, value: Record<string, unknown>): string {
  return `<!-- safe-lora-bot:${name} ${commentJson(value)} -->`;
}

/** The JSON object of the first `name` marker in a text, or null when there is none (or it does not read as one). */
export function readBotMarker(text: string, name: string): Record<string, unknown> | null {
  const match = new RegExp(`<!-- safe-lora-bot:${name} (\\{.*?\\}) -->`).exec(text);
  if (!match) return null;
  try {
    const value: unknown = JSON.parse(match[1]!);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The hidden marker in a bot pull request's description that says which folder it covers. */
export function pullRequestMarker(folder: string): string {
  return botMarker("pull-request", { folder });
}

/** The folder a pull request marker names, or null when the text has none. */
export function readPullRequestMarker(text: string): string | null {
  const folder = readBotMarker(text, "pull-request")?.folder;
  return typeof folder === "string" ? folder : null;
}
