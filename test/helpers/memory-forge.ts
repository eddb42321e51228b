import { createHash } from "node:crypto";
import { SafeLoraError } from "../../src/errors.js";
import { readPullRequestMarker } from "../../src/forge/forge.js";
import type * as F from "../../src/forge/forge.js";
import type { ByteSource } from "../../src/storage/byte-source.js";
import { checkTextSize, MAX_TEXT_BYTES } from "../../src/storage/repo-files.js";

/** An account id as forges give them (24 hex characters), the same for the same name. */
export function accountId(name: string): string {
  return createHash("sha1").update(`account:${name}`).digest("hex").slice(0, 24);
}

const sha1 = (text: string) => createHash("sha1").update(text).digest("hex");

export interface MemoryCommit {
  readonly sha: string;
  readonly parent: string | null;
  readonly title: string;
  readonly author: string;
  readonly files: ReadonlyMap<string, Uint8Array>;
}

export interface MemoryComment {
  readonly id: string;
  /** The username that wrote it. */
  readonly author: string;
  text: string;
  edits: number;
  hidden: boolean;
}

export interface MemoryDiscussion {
  readonly num: number;
  readonly title: string;
  readonly isPullRequest: boolean;
  status: F.BotPullRequest["status"];
  /** Who closed it last, when it is closed (tests that close it as someone else set both). */
  closedBy?: string;
  /** The username that opened it. */
  readonly author: string;
  /** The opening message first, then every comment in order. */
  readonly comments: MemoryComment[];
}

export interface MemoryRepo {
  readonly repo: string;
  private: boolean;
  /** `main` and `refs/pull/<num>/head` -> commit sha. */
  readonly refs: Map<string, string>;
  readonly commits: Map<string, MemoryCommit>;
  readonly discussions: MemoryDiscussion[];
}

/** A file's content as tests give it: text, or bytes. */
export type MemoryFile = string | Uint8Array;

const MAIN = "main";
/** Not the Hub's `refs/pr/N`: a job that names a forge's refs itself fails on this forge. */
const pullRef = (num: number) => `refs/pull/${num}/head`;

const bytesOf = (content: MemoryFile) => (typeof content === "string" ? new TextEncoder().encode(content) : content);

/** Calls a test can make fail, or precede with someone else's action, once (e.g. an outage in the middle of a job). */
type InterceptedCall = Exclude<keyof F.Forge, "name" | "bot" | "pullRequestHead" | "pullRequestUrl" | "tryVariant">;

/**
 * A forge held in memory, for the bot's unit tests and the forge contract suite: repos with commits and refs,
 * discussions and pull requests with comments, organisations with members. It names its pull requests' heads
 * `refs/pull/<num>/head` (as GitHub does), so code that assumes the Hub's refs fails here. Errors are the
 * SafeLoraError codes every forge reports. Besides the Forge interface it has setup methods (what people
 * other than the bot do) and the state itself, for assertions.
 */
export class MemoryForge implements F.Forge {
  readonly repos = new Map<string, MemoryRepo>();
  /** Organisation -> usernames of its members. */
  readonly orgs = new Map<string, Set<string>>();
  /** Every call of a Forge method, in order, by method name. */
  readonly calls: Array<{ method: string; params: unknown }> = [];
  private readonly interceptions = new Map<InterceptedCall, () => void>();
  private counter = 0;

  constructor(
    readonly bot: F.BotAccount = { id: accountId("safe-lora-bot"), name: "safe-lora-bot" },
    readonly name: F.ForgeName = "hub",
    readonly repoConfigPath = "safe-lora.yaml",
  ) {}

  // ---- setup: what people other than the bot do ----

  addOrg(org: string, members: readonly string[]): void {
    this.orgs.set(org, new Set(members));
  }

  /** A repo with `files` on main (an initial empty commit first, as forges make one). Returns the head sha. */
  createRepo(params: { repo: string; files?: Record<string, MemoryFile>; private?: boolean }): string {
    if (this.repos.has(params.repo)) throw new Error(`${params.repo} exists`);
    const repo: MemoryRepo = { repo: params.repo, private: params.private ?? false, refs: new Map(), commits: new Map(), discussions: [] };
    this.repos.set(params.repo, repo);
    const initial = this.addCommit(repo, null, new Map(), { title: "initial commit", author: params.repo.split("/")[0]! });
    repo.refs.set(MAIN, initial.sha);
    return params.files ? this.commitFiles({ repo: params.repo, files: params.files }) : initial.sha;
  }

  /** A commit on main, or on pull request `pullRequest`'s head, by `author` (default the owner). Returns its sha. */
  commitFiles(params: { repo: string; files: Record<string, MemoryFile | null>; pullRequest?: number; author?: string; title?: string }): string {
    const repo = this.repoOf(params.repo);
    const ref = params.pullRequest === undefined ? MAIN : pullRef(params.pullRequest);
    const parent = repo.commits.get(repo.refs.get(ref) ?? "")!;
    if (!parent) throw new Error(`${params.repo} has no ${ref}`);
    const files = new Map(parent.files);
    for (const [path, content] of Object.entries(params.files)) {
      if (content === null) files.delete(path);
      else files.set(path, bytesOf(content));
    }
    const made = this.addCommit(repo, parent.sha, files, { title: params.title ?? "Upload", author: params.author ?? params.repo.split("/")[0]! });
    repo.refs.set(ref, made.sha);
    return made.sha;
  }

  /** A discussion (or a pull request from main's head) opened by `author`. Returns its number. */
  openDiscussionAs(params: { repo: string; author: string; title: string; text: string; pullRequest?: boolean }): number {
    const repo = this.repoOf(params.repo);
    return this.addDiscussion(repo, { ...params, isPullRequest: params.pullRequest ?? false, status: "open" }).num;
  }

  /** A comment by `author`; returns its id. */
  commentAs(params: { repo: string; discussion: number; author: string; text: string; hidden?: boolean }): string {
    const discussion = this.discussionOf(params.repo, params.discussion);
    const comment = { id: this.nextId(), author: params.author, text: params.text, edits: 0, hidden: params.hidden ?? false };
    discussion.comments.push(comment);
    return comment.id;
  }

  /** A maintainer merges pull request `num`: its head's files become main's. */
  mergePullRequest(params: { repo: string; num: number }): string {
    const repo = this.repoOf(params.repo);
    const discussion = this.discussionOf(params.repo, params.num);
    const head = repo.commits.get(repo.refs.get(pullRef(params.num))!)!;
    const merged = this.addCommit(repo, repo.refs.get(MAIN)!, new Map(head.files), { title: `Merge pull request #${params.num}`, author: params.repo.split("/")[0]! });
    repo.refs.set(MAIN, merged.sha);
    discussion.status = "merged";
    return merged.sha;
  }

  /** The next call of `method` throws `error` (once). */
  failNext(method: InterceptedCall, error: unknown): void {
    this.beforeNext(method, () => {
      throw error;
    });
  }

  /** `action` runs just before the next call of `method` (once): what someone else does at that moment. */
  beforeNext(method: InterceptedCall, action: () => void): void {
    this.interceptions.set(method, action);
  }

  // ---- state, for assertions ----

  repoOf(name: string): MemoryRepo {
    const repo = this.repos.get(name);
    if (!repo) throw new SafeLoraError(`${name}: not found on this forge; check the id`, "hub-not-found");
    return repo;
  }

  discussionOf(repo: string, num: number): MemoryDiscussion {
    const discussion = this.repoOf(repo).discussions.find((d) => d.num === num);
    if (!discussion) throw new SafeLoraError(`${repo}: no discussion #${num}`, "hub-not-found");
    return discussion;
  }

  /** The file at a ref or sha of a repo, as text; null when absent. */
  fileAt(params: { repo: string; revision: string; path: string }): string | null {
    const bytes = this.resolve(this.repoOf(params.repo), params.revision).files.get(params.path);
    return bytes ? new TextDecoder().decode(bytes) : null;
  }

  /** The comments the bot wrote on a discussion, the opening message excluded. */
  botComments(repo: string, num: number): MemoryComment[] {
    return this.discussionOf(repo, num).comments.slice(1).filter((comment) => comment.author === this.bot.name);
  }

  // ---- the Forge interface, as the bot ----

  async head(repo: string): Promise<F.RepoHead> {
    this.enter("head", { repo });
    const state = this.repoOf(repo);
    return { repo, sha: state.refs.get(MAIN)!, private: state.private };
  }

  async open(params: F.OpenParams): Promise<F.PinnedRepo> {
    this.enter("open", params);
    const repo = this.repoOf(params.repo);
    return new MemoryPinnedRepo(repo.repo, this.resolve(repo, params.revision), repo.private);
  }

  pullRequestHead(_repo: string, num: number): string {
    return pullRef(num);
  }

  async pullRequests(repo: string): Promise<F.BotPullRequest[]> {
    this.enter("pullRequests", { repo });
    const found: F.BotPullRequest[] = [];
    for (const discussion of this.repoOf(repo).discussions) {
      if (!discussion.isPullRequest || discussion.author !== this.bot.name) continue;
      const description = discussion.comments[0]!.text;
      const folder = readPullRequestMarker(description);
      if (folder !== null) found.push({ num: discussion.num, status: discussion.status, folder, description });
    }
    return found.sort((a, b) => b.num - a.num);
  }

  async openPullRequest(params: F.OpenPullRequestParams): Promise<{ num: number; commit: string }> {
    this.enter("openPullRequest", params);
    const repo = this.repoOf(params.repo);
    const base = this.resolve(repo, params.baseSha);
    const files = new Map(base.files);
    for (const file of params.files) files.set(file.path, new Uint8Array(await file.content.arrayBuffer()));
    const discussion = this.addDiscussion(repo, { author: this.bot.name, title: params.title, text: params.description, isPullRequest: true, status: "open" });
    const made = this.addCommit(repo, base.sha, files, { title: params.title, author: this.bot.name });
    repo.refs.set(pullRef(discussion.num), made.sha);
    return { num: discussion.num, commit: made.sha };
  }

  async pushToPullRequest(params: F.PushParams): Promise<{ commit: string } | "stale"> {
    this.enter("pushToPullRequest", params);
    const repo = this.repoOf(params.repo);
    this.discussionOf(params.repo, params.num);
    const head = repo.refs.get(pullRef(params.num));
    if (!head) throw new SafeLoraError(`${params.repo}: #${params.num} is not a pull request`, "hub-not-found");
    if (head !== params.parent) return "stale";
    const files = new Map(repo.commits.get(head)!.files);
    for (const file of params.files) files.set(file.path, new Uint8Array(await file.content.arrayBuffer()));
    const made = this.addCommit(repo, head, files, { title: params.title, author: this.bot.name });
    repo.refs.set(pullRef(params.num), made.sha);
    return { commit: made.sha };
  }

  async updateDescription(params: F.PullRequestText): Promise<void> {
    this.enter("updateDescription", params);
    const opening = this.discussionOf(params.repo, params.num).comments[0]!;
    this.mayEdit(params.repo, opening);
    opening.text = params.text;
    opening.edits++;
  }

  async comment(params: F.DiscussionText): Promise<string> {
    this.enter("comment", params);
    const discussion = this.discussionOf(params.repo, params.discussion);
    const comment = { id: this.nextId(), author: this.bot.name, text: params.text, edits: 0, hidden: false };
    discussion.comments.push(comment);
    return comment.id;
  }

  async editComment(params: F.EditCommentParams): Promise<void> {
    this.enter("editComment", params);
    const comment = this.discussionOf(params.repo, params.discussion).comments.find((c) => c.id === params.commentId);
    if (!comment) throw new SafeLoraError(`${params.repo}: no comment ${params.commentId} on #${params.discussion}`, "hub-not-found");
    this.mayEdit(params.repo, comment);
    comment.text = params.text;
    comment.edits++;
  }

  async closePullRequest(params: F.CloseParams): Promise<void> {
    this.enter("closePullRequest", params);
    this.close(params.repo, params.num, params.comment);
  }

  async openDiscussion(params: F.OpenDiscussionParams): Promise<number> {
    this.enter("openDiscussion", params);
    return this.addDiscussion(this.repoOf(params.repo), { author: this.bot.name, title: params.title, text: params.text, isPullRequest: false, status: "open" }).num;
  }

  async botDiscussions(repo: string): Promise<F.BotDiscussion[]> {
    this.enter("botDiscussions", { repo });
    return this.repoOf(repo)
      .discussions.filter((d) => !d.isPullRequest && d.status === "open" && d.author === this.bot.name && d.comments[0]!.author === this.bot.name)
      .map((d) => ({ num: d.num, text: d.comments[0]!.text }));
  }

  async botThreads(repo: string): Promise<F.BotThread[]> {
    this.enter("botThreads", { repo });
    return this.repoOf(repo)
      .discussions.filter((d) => d.author === this.bot.name)
      .map((d) => ({
        num: d.num,
        isPullRequest: d.isPullRequest,
        status: d.status,
        closedByBot: d.status === "closed" && d.closedBy === this.bot.name,
        messages: this.botMessagesOf(d),
      }));
  }

  async listBotComments(params: F.DiscussionRef): Promise<F.BotComment[]> {
    this.enter("listBotComments", params);
    return this.botMessagesOf(this.discussionOf(params.repo, params.discussion));
  }

  async closeDiscussion(params: F.CloseDiscussionParams): Promise<void> {
    this.enter("closeDiscussion", params);
    this.close(params.repo, params.discussion, params.comment);
  }

  async commentAuthor(params: F.CommentRef): Promise<string | null> {
    this.enter("commentAuthor", params);
    return this.discussionOf(params.repo, params.discussion).comments.find((c) => c.id === params.commentId)?.author ?? null;
  }

  async isMaintainer(params: { readonly repo: string; readonly username: string }): Promise<boolean> {
    this.enter("isMaintainer", params);
    const owner = params.repo.split("/")[0]!;
    return owner === params.username || (this.orgs.get(owner)?.has(params.username) ?? false);
  }

  async reposOf(owner: string): Promise<F.RepoHead[]> {
    this.enter("reposOf", { owner });
    if (owner.includes("/")) return [await this.head(owner)];
    return [...this.repos.values()].filter((r) => r.repo.startsWith(`${owner}/`)).map((r) => ({ repo: r.repo, sha: r.refs.get(MAIN)!, private: r.private }));
  }

  pullRequestUrl(repo: string, num: number): string {
    return `https://forge.example/${repo}/pull/${num}`;
  }

  tryVariant(params: F.TryVariantParams): F.TryVariant {
    const revision = params.num === null ? "<this pull request's head>" : pullRef(params.num);
    return {
      language: "shell",
      beforeMerging: `git fetch origin ${revision} && git checkout FETCH_HEAD -- ${params.subfolder}  # on ${params.aligned}`,
      afterMerging: `git pull origin main -- ${params.subfolder}`,
      afterMergingNote: "pull main",
    };
  }

  // ---- internals ----

  private enter(method: InterceptedCall, params: unknown): void {
    this.calls.push({ method, params });
    const action = this.interceptions.get(method);
    this.interceptions.delete(method);
    action?.();
  }

  private nextId(): string {
    return sha1(`id:${++this.counter}`).slice(0, 24);
  }

  private addCommit(repo: MemoryRepo, parent: string | null, files: Map<string, Uint8Array>, meta: { title: string; author: string }): MemoryCommit {
    const made = { sha: sha1(`commit:${repo.repo}:${++this.counter}`), parent, title: meta.title, author: meta.author, files };
    repo.commits.set(made.sha, made);
    return made;
  }

  private addDiscussion(repo: MemoryRepo, params: { author: string; title: string; text: string; isPullRequest: boolean; status: MemoryDiscussion["status"] }): MemoryDiscussion {
    const discussion: MemoryDiscussion = {
      num: repo.discussions.length + 1,
      title: params.title,
      isPullRequest: params.isPullRequest,
      status: params.status,
      author: params.author,
      comments: [{ id: this.nextId(), author: params.author, text: params.text, edits: 0, hidden: false }],
    };
    repo.discussions.push(discussion);
    if (params.isPullRequest && params.author !== this.bot.name) repo.refs.set(pullRef(discussion.num), repo.refs.get(MAIN)!);
    return discussion;
  }

  private mayEdit(repo: string, comment: MemoryComment): void {
    if (comment.author !== this.bot.name) throw new SafeLoraError(`${repo}: the forge did not let the bot edit ${comment.author}'s comment (403); its token may edit only its own`, "hub-access");
  }

  private botMessagesOf(discussion: MemoryDiscussion): F.BotComment[] {
    return discussion.comments.filter((c) => c.author === this.bot.name).map((c) => ({ id: c.id, text: c.text }));
  }

  private close(repo: string, num: number, comment: string): void {
    const discussion = this.discussionOf(repo, num);
    discussion.status = "closed";
    discussion.closedBy = this.bot.name;
    discussion.comments.push({ id: this.nextId(), author: this.bot.name, text: comment, edits: 0, hidden: false });
  }

  /** A branch name, a ref, or a full or abbreviated (7+) commit sha. */
  private resolve(repo: MemoryRepo, revision: string): MemoryCommit {
    const ref = revision === `refs/heads/${MAIN}` ? MAIN : revision;
    const sha = repo.refs.get(ref) ?? (/^[0-9a-f]{7,40}$/.test(revision) ? [...repo.commits.keys()].find((s) => s.startsWith(revision)) : undefined);
    const found = sha ? repo.commits.get(sha) : undefined;
    if (!found) throw new SafeLoraError(`${repo.repo} has no revision "${revision}"; use a branch, ref or commit sha that exists`, "hub-not-found");
    return found;
  }
}

/** A repo pinned to one commit of a MemoryForge. */
class MemoryPinnedRepo implements F.PinnedRepo {
  private textBytes = 0;
  private readonly sources: MemoryByteSource[] = [];

  readonly private: boolean;

  constructor(
    private readonly repo: string,
    private readonly pinned: MemoryCommit,
    isPrivate: boolean,
  ) {
    this.private = isPrivate;
  }

  get sha(): string {
    return this.pinned.sha;
  }

  get description(): string {
    return `${this.repo}@${this.pinned.sha.slice(0, 12)}`;
  }

  get bytesRead(): number {
    return this.sources.reduce((sum, source) => sum + source.bytesRead, this.textBytes);
  }

  paths(): string[] {
    return [...this.pinned.files.keys()];
  }

  async exists(path: string): Promise<boolean> {
    return this.pinned.files.has(path);
  }

  private bytes(path: string): Uint8Array {
    const bytes = this.pinned.files.get(path);
    if (!bytes) throw new SafeLoraError(`${this.description} has no file ${path}`, "missing-file");
    return bytes;
  }

  async readText(path: string, options: { readonly maxBytes?: number } = {}): Promise<string> {
    const bytes = this.bytes(path);
    checkTextSize(`${this.description}/${path}`, bytes.byteLength, options.maxBytes ?? MAX_TEXT_BYTES);
    this.textBytes += bytes.byteLength;
    return new TextDecoder().decode(bytes);
  }

  async contentKey(path: string): Promise<string | null> {
    const bytes = this.pinned.files.get(path);
    return bytes ? createHash("sha256").update(bytes).digest("hex") : null;
  }

  async openBytes(path: string): Promise<ByteSource> {
    const source = new MemoryByteSource(`${this.description}/${path}`, this.bytes(path));
    this.sources.push(source);
    return source;
  }

  async close(): Promise<void> {
    // Nothing is held open.
  }
}

class MemoryByteSource implements ByteSource {
  bytesRead = 0;

  constructor(
    readonly description: string,
    private readonly bytes: Uint8Array,
  ) {}

  get size(): number {
    return this.bytes.byteLength;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) throw new RangeError(`read of ${length} bytes at ${offset} is outside ${this.description} (${this.size} bytes)`);
    // A copy with byteOffset 0, as a file read gives: typed-array views of it are aligned.
    const target = into ? into.subarray(0, length) : new Uint8Array(length);
    target.set(this.bytes.subarray(offset, offset + length));
    this.bytesRead += length;
    return target;
  }

  async close(): Promise<void> {}
}
