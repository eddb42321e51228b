import { commit, HubApiError, listModels, modelInfo, whoAmI } from "@huggingface/hub";
import { SafeLoraError } from "../errors.js";
import { readPullRequestMarker, type BotDiscussion, type BotPullRequest, type FileToCommit, type Forge, type PinnedRepo, type RepoHead } from "../forge/forge.js";
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

/** The Hub as a forge: @huggingface/hub for repos and commits, the discussions API for pull requests. */
export class HubForge implements Forge {
  private constructor(
    readonly access: HubAccess,
    readonly bot: { readonly id: string; readonly name: string },
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

  async head(repo: string): Promise<RepoHead> {
    try {
      const info = (await modelInfo({ ...hubParams(this.access), name: repo, additionalFields: ["sha"] })) as { sha?: string; private: boolean };
      if (!info.sha) throw new SafeLoraError(`${repo}: the Hub did not give its head commit`, "hub-unavailable");
      return { repo, sha: info.sha, private: info.private };
    } catch (error) {
      throw explainHubError(error, repo, this.access);
    }
  }

  async open(repo: string, revision: string): Promise<PinnedRepo> {
    return HubRepoFiles.open(this.access, { id: repo, revision });
  }

  async pullRequests(repo: string): Promise<BotPullRequest[]> {
    const discussions = await listDiscussions(this.access, repo);
    const ours = discussions.filter((d) => d.isPullRequest && d.author?.name === this.bot.name);
    const found: BotPullRequest[] = [];
    for (const summary of ours) {
      const details = await getDiscussion(this.access, repo, summary.num);
      const opening = details.events.find((event) => event.type === "comment");
      const description = opening?.data?.latest?.raw ?? "";
      const folder = readPullRequestMarker(description);
      if (folder !== null) found.push({ num: summary.num, status: summary.status, folder, description });
    }
    return found.sort((a, b) => b.num - a.num);
  }

  private operations(files: FileToCommit[]) {
    return files.map((file) => ({ operation: "addOrUpdate" as const, path: file.path, content: file.content }));
  }

  async openPullRequest(repo: string, change: { baseSha: string; title: string; description: string; files: FileToCommit[] }): Promise<{ num: number; commit: string }> {
    const result = await commit({
      ...hubParams(this.access),
      accessToken: this.access.accessToken!,
      repo: { type: "model", name: repo },
      title: change.title,
      description: change.description,
      isPullRequest: true,
      parentCommit: change.baseSha,
      useXet: false,
      operations: this.operations(change.files),
    });
    const num = Number(/\/discussions\/(\d+)$/.exec(result?.pullRequestUrl ?? "")?.[1]);
    if (!result || !Number.isInteger(num)) throw new SafeLoraError(`${repo}: the Hub opened no pull request (no pullRequestUrl in its answer)`, "hub-unavailable");
    return { num, commit: result.commit.oid };
  }

  async pushToPullRequest(repo: string, num: number, change: { parent: string; title: string; files: FileToCommit[] }): Promise<{ commit: string } | "stale"> {
    try {
      const result = await commit({
        ...hubParams(this.access),
        accessToken: this.access.accessToken!,
        repo: { type: "model", name: repo },
        title: change.title,
        branch: `refs/pr/${num}`,
        parentCommit: change.parent,
        useXet: false,
        operations: this.operations(change.files),
      });
      if (!result) throw new SafeLoraError(`${repo}: the Hub made no commit`, "hub-unavailable");
      return { commit: result.commit.oid };
    } catch (error) {
      if (error instanceof HubApiError && error.statusCode === 412) return "stale";
      throw error;
    }
  }

  async updateDescription(repo: string, num: number, text: string): Promise<void> {
    const details = await getDiscussion(this.access, repo, num);
    const opening = details.events.find((event) => event.type === "comment");
    if (opening) await editComment(this.access, repo, num, opening.id, text);
  }

  comment(repo: string, num: number, text: string): Promise<string> {
    return postComment(this.access, repo, num, text);
  }

  editComment(repo: string, num: number, commentId: string, text: string): Promise<void> {
    return editComment(this.access, repo, num, commentId, text);
  }

  closePullRequest(repo: string, num: number, comment: string): Promise<void> {
    return changeDiscussionStatus(this.access, repo, num, "closed", comment);
  }

  openDiscussion(repo: string, title: string, text: string): Promise<number> {
    return createDiscussion(this.access, repo, title, text);
  }

  async botDiscussions(repo: string): Promise<BotDiscussion[]> {
    const discussions = await listDiscussions(this.access, repo);
    const found: BotDiscussion[] = [];
    for (const summary of discussions.filter((d) => !d.isPullRequest && d.status === "open" && d.author?.name === this.bot.name)) {
      const details = await getDiscussion(this.access, repo, summary.num);
      const opening = details.events.find((event) => event.type === "comment");
      // The opening message is the one that counts, and it must be the bot's too (not an edit by someone else).
      if (opening?.author?.name === this.bot.name && opening.data?.latest?.raw !== undefined) found.push({ num: summary.num, text: opening.data.latest.raw });
    }
    return found;
  }

  closeDiscussion(repo: string, num: number, comment: string): Promise<void> {
    return changeDiscussionStatus(this.access, repo, num, "closed", comment);
  }

  async commentAuthor(repo: string, num: number, commentId: string): Promise<string | null> {
    const details = await getDiscussion(this.access, repo, num);
    return details.events.find((event) => event.id === commentId)?.author?.name ?? null;
  }

  async isMaintainer(repo: string, username: string): Promise<boolean> {
    const owner = repo.slice(0, repo.indexOf("/"));
    if (owner === username) return true;
    try {
      return (await organizationMembers(this.access, owner)).includes(username);
    } catch (error) {
      // A user account has no member list: only its owner maintains it.
      if ((error as { statusCode?: number }).statusCode === 404) return false;
      throw error;
    }
  }

  async reposOf(owner: string): Promise<RepoHead[]> {
    if (owner.includes("/")) return [await this.head(owner)];
    const heads: RepoHead[] = [];
    for await (const model of listModels({ ...hubParams(this.access), search: { owner }, additionalFields: ["sha"] })) {
      const sha = (model as { sha?: string }).sha;
      if (sha) heads.push({ repo: model.name, sha, private: model.private });
    }
    return heads;
  }

  pullRequestUrl(repo: string, num: number): string {
    return `${hubParams(this.access).hubUrl}/${repo}/discussions/${num}`;
  }
}
