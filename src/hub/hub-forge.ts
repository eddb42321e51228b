import { commit, HubApiError, listModels, modelInfo, whoAmI } from "@huggingface/hub";
import { SafeLoraError } from "../errors.js";
import {
  readPullRequestMarker,
  type BotAccount,
  type BotComment,
  type BotDiscussion,
  type BotPullRequest,
  type CloseDiscussionParams,
  type CloseParams,
  type CommentRef,
  type DiscussionRef,
  type DiscussionText,
  type EditCommentParams,
  type FileToCommit,
  type Forge,
  type OpenDiscussionParams,
  type OpenParams,
  type OpenPullRequestParams,
  type PinnedRepo,
  type PullRequestText,
  type PushParams,
  type BotThread,
  type RepoHead,
  type TryVariant,
  type TryVariantParams,
} from "../forge/forge.js";
import {
  changeDiscussionStatus,
  createDiscussion,
  editComment,
  getDiscussion,
  listDiscussions,
  organizationMembers,
  postComment,
} from "./discussions.js";
import { explainHubError, hubParams, type HubAccess } from "./hub-access.js";
import { HubRepoFiles } from "./hub-repo-files.js";
import { hubPullRequestRef, hubTryVariant } from "./try-variant.js";

/**
 * The Hub as a forge: @huggingface/hub for repos and commits, the discussions API for pull requests. Every
 * Hub error leaves it as a SafeLoraError (see `hubForgeError`), so the bot's jobs never see a Hub class.
 */
export class HubForge implements Forge {
  readonly name = "hub" as const;
  readonly repoConfigPath = "safe-lora.yaml";

  private constructor(
    readonly access: HubAccess,
    readonly bot: BotAccount,
  ) {}

  /** Checks the token with whoami-v2 and learns who the bot is. */
  static async connect(access: HubAccess): Promise<HubForge> {
    if (!access.accessToken) throw new SafeLoraError("the bot needs a Hub token with write access: set HF_TOKEN", "usage");
    let me: { id?: unknown; name?: unknown };
    try {
      me = (await whoAmI({ ...hubParams(access), accessToken: access.accessToken })) as { id?: unknown; name?: unknown };
    } catch (error) {
      if (error instanceof HubApiError && error.statusCode === 401) {
        throw new SafeLoraError(`the Hub at ${access.hubUrl} refused HF_TOKEN (whoami-v2 answered 401); create a write token at ${access.hubUrl}/settings/tokens`, "usage");
      }
      if (!(error instanceof HubApiError)) {
        throw new SafeLoraError(`cannot reach the Hub at ${access.hubUrl} (${(error as Error).message}); check HF_ENDPOINT and the network`, "hub-unavailable", { cause: error });
      }
      throw error;
    }
    if (typeof me.id !== "string" || typeof me.name !== "string") throw new SafeLoraError("whoami-v2 did not name the bot's account", "hub-unavailable");
    return new HubForge(access, { id: me.id, name: me.name });
  }

  /** Runs one Hub call about `repo`; `action` names what the bot was doing when it was a write of its own. */
  private async call<T>(repo: string, action: string | null, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw hubForgeError({ error, repo, action, access: this.access });
    }
  }

  async head(repo: string): Promise<RepoHead> {
    return this.call(repo, null, async () => {
      const info = (await modelInfo({ ...hubParams(this.access), name: repo, additionalFields: ["sha"] })) as { sha?: string; private: boolean };
      if (!info.sha) throw new SafeLoraError(`${repo}: the Hub did not give its head commit`, "hub-unavailable");
      return { repo, sha: info.sha, private: info.private };
    });
  }

  async open(params: OpenParams): Promise<PinnedRepo> {
    return this.call(params.repo, null, () => HubRepoFiles.open(this.access, { id: params.repo, revision: params.revision }));
  }

  pullRequestHead(_repo: string, num: number): string {
    return hubPullRequestRef(num);
  }

  async pullRequests(repo: string): Promise<BotPullRequest[]> {
    return this.call(repo, null, async () => {
      const discussions = await listDiscussions(this.access, repo);
      const ours = discussions.filter((d) => d.isPullRequest && d.author?.name === this.bot.name);
      const found: BotPullRequest[] = [];
      for (const summary of ours) {
        const description = (await this.opening(repo, summary.num))?.data?.latest?.raw ?? "";
        const folder = readPullRequestMarker(description);
        if (folder !== null) found.push({ num: summary.num, status: summary.status, folder, description });
      }
      return found.sort((a, b) => b.num - a.num);
    });
  }

  /** A discussion's opening message (a pull request's description). */
  private async opening(repo: string, num: number) {
    const details = await getDiscussion(this.access, repo, num);
    return details.events.find((event) => event.type === "comment");
  }

  private operations(files: readonly FileToCommit[]) {
    return files.map((file) => ({ operation: "addOrUpdate" as const, path: file.path, content: file.content }));
  }

  async openPullRequest(params: OpenPullRequestParams): Promise<{ num: number; commit: string }> {
    const { repo } = params;
    const result = await this.call(repo, "open a pull request", () =>
      commit({
        ...hubParams(this.access),
        accessToken: this.access.accessToken!,
        repo: { type: "model", name: repo },
        title: params.title,
        description: params.description,
        isPullRequest: true,
        parentCommit: params.baseSha,
        useXet: false,
        operations: this.operations(params.files),
      }),
    );
    const num = Number(/\/discussions\/(\d+)$/.exec(result?.pullRequestUrl ?? "")?.[1]);
    if (!result || !Number.isInteger(num)) throw new SafeLoraError(`${repo}: the Hub opened no pull request (no pullRequestUrl in its answer)`, "hub-unavailable");
    return { num, commit: result.commit.oid };
  }

  async pushToPullRequest(params: PushParams): Promise<{ commit: string } | "stale"> {
    const { repo, num } = params;
    let result;
    try {
      result = await commit({
        ...hubParams(this.access),
        accessToken: this.access.accessToken!,
        repo: { type: "model", name: repo },
        title: params.title,
        branch: hubPullRequestRef(num),
        parentCommit: params.parent,
        useXet: false,
        operations: this.operations(params.files),
      });
    } catch (error) {
      // 412: the branch's head is no longer `parent`.
      if (error instanceof HubApiError && error.statusCode === 412) return "stale";
      throw hubForgeError({ error, repo, action: `commit to pull request #${num}`, access: this.access });
    }
    if (!result) throw new SafeLoraError(`${repo}: the Hub made no commit`, "hub-unavailable");
    return { commit: result.commit.oid };
  }

  async updateDescription(params: PullRequestText): Promise<void> {
    const { repo, num, text } = params;
    await this.call(repo, `edit the description of pull request #${num}`, async () => {
      const opening = await this.opening(repo, num);
      if (opening) await editComment(this.access, { repo, num, commentId: opening.id, content: text });
    });
  }

  comment(params: DiscussionText): Promise<string> {
    return this.call(params.repo, `comment on #${params.discussion}`, () => postComment(this.access, { repo: params.repo, num: params.discussion, comment: params.text }));
  }

  editComment(params: EditCommentParams): Promise<void> {
    return this.call(params.repo, `edit its comment on #${params.discussion}`, () => editComment(this.access, { repo: params.repo, num: params.discussion, commentId: params.commentId, content: params.text }));
  }

  closePullRequest(params: CloseParams): Promise<void> {
    return this.call(params.repo, `close pull request #${params.num}`, () => changeDiscussionStatus(this.access, { repo: params.repo, num: params.num, status: "closed", comment: params.comment }));
  }

  openDiscussion(params: OpenDiscussionParams): Promise<number> {
    return this.call(params.repo, "open a discussion", () => createDiscussion(this.access, { repo: params.repo, title: params.title, description: params.text }));
  }

  async botDiscussions(repo: string): Promise<BotDiscussion[]> {
    return this.call(repo, null, async () => {
      const discussions = await listDiscussions(this.access, repo);
      const found: BotDiscussion[] = [];
      for (const summary of discussions.filter((d) => !d.isPullRequest && d.status === "open" && d.author?.name === this.bot.name)) {
        const opening = await this.opening(repo, summary.num);
        // The opening message is the one that counts, and it must be the bot's too (not an edit by someone else).
        if (opening?.author?.name === this.bot.name && opening.data?.latest?.raw !== undefined) found.push({ num: summary.num, text: opening.data.latest.raw });
      }
      return found;
    });
  }

  async botThreads(repo: string): Promise<BotThread[]> {
    return this.call(repo, null, async () => {
      const threads: BotThread[] = [];
      for (const summary of (await listDiscussions(this.access, repo)).filter((d) => d.author?.name === this.bot.name)) {
        const { events } = await getDiscussion(this.access, repo, summary.num);
        const lastStatus = events.filter((event) => event.type === "status-change").at(-1);
        threads.push({
          num: summary.num,
          isPullRequest: summary.isPullRequest,
          status: summary.status,
          closedByBot: summary.status === "closed" && lastStatus?.author?.name === this.bot.name,
          messages: this.botMessages(events),
        });
      }
      return threads;
    });
  }

  async listBotComments(params: DiscussionRef): Promise<BotComment[]> {
    return this.call(params.repo, null, async () => this.botMessages((await getDiscussion(this.access, params.repo, params.discussion)).events));
  }

  /** The comments among a discussion's events that the bot wrote, with their text as it stands. */
  private botMessages(events: ReadonlyArray<{ id: string; type: string; author?: { name: string } | null; data?: { latest?: { raw: string } } }>): BotComment[] {
    return events.filter((event) => event.type === "comment" && event.author?.name === this.bot.name && event.data?.latest !== undefined).map((event) => ({ id: event.id, text: event.data!.latest!.raw }));
  }

  closeDiscussion(params: CloseDiscussionParams): Promise<void> {
    return this.call(params.repo, `close discussion #${params.discussion}`, () => changeDiscussionStatus(this.access, { repo: params.repo, num: params.discussion, status: "closed", comment: params.comment }));
  }

  async commentAuthor(params: CommentRef): Promise<string | null> {
    return this.call(params.repo, null, async () => {
      const details = await getDiscussion(this.access, params.repo, params.discussion);
      return details.events.find((event) => event.id === params.commentId)?.author?.name ?? null;
    });
  }

  async isMaintainer(params: { readonly repo: string; readonly username: string }): Promise<boolean> {
    const { repo, username } = params;
    const owner = repo.slice(0, repo.indexOf("/"));
    if (owner === username) return true;
    return this.call(repo, null, async () => {
      try {
        return (await organizationMembers(this.access, owner)).includes(username);
      } catch (error) {
        // A user account has no member list: only its owner maintains it.
        if (error instanceof HubApiError && error.statusCode === 404) return false;
        throw error;
      }
    });
  }

  async reposOf(owner: string): Promise<RepoHead[]> {
    if (owner.includes("/")) return [await this.head(owner)];
    return this.call(owner, null, async () => {
      const heads: RepoHead[] = [];
      for await (const model of listModels({ ...hubParams(this.access), search: { owner }, additionalFields: ["sha"] })) {
        const sha = (model as { sha?: string }).sha;
        if (sha) heads.push({ repo: model.name, sha, private: model.private });
      }
      return heads;
    });
  }

  pullRequestUrl(repo: string, num: number): string {
    return `${hubParams(this.access).hubUrl}/${repo}/discussions/${num}`;
  }

  tryVariant(params: TryVariantParams): TryVariant {
    return hubTryVariant(params);
  }
}

/**
 * A Hub failure as the SafeLoraError the bot decides on: no answer, 429 and 5xx are `hub-unavailable`
 * (retried), 404 `hub-not-found`, 401 and 403 `hub-access`. A refusal of one of the bot's own writes
 * (`action`) says the bot's token lacks the right, not that a model is gated. A SafeLoraError passes as it is;
 * anything else is a bug and passes too.
 */
function hubForgeError(params: {
  readonly error: unknown;
  /** The repo (or owner) the call was about. */
  readonly repo: string;
  /** What the bot was doing, for a write of its own (comment, commit, close); null for reads. */
  readonly action: string | null;
  readonly access: HubAccess;
}): unknown {
  const { error, repo, action, access } = params;
  if (error instanceof SafeLoraError) return error;
  if (action && error instanceof HubApiError && (error.statusCode === 401 || error.statusCode === 403)) {
    const detail = error.message.split(". URL:")[0];
    return new SafeLoraError(`${repo}: the Hub did not let the bot ${action} (${error.statusCode}: ${detail}); its token needs write access to the repo`, "hub-access", { cause: error });
  }
  return explainHubError(error, repo, access);
}
