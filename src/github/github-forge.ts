import type { App, Octokit } from "octokit";
import { RequestError } from "octokit";
import type { z } from "zod";
import { SafeLoraError } from "../errors.js";
import {
  readPullRequestMarker,
  type BotAccount,
  type BotComment,
  type BotDiscussion,
  type BotPullRequest,
  type BotThread,
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
  type RepoHead,
  type TryVariant,
  type TryVariantParams,
} from "../forge/forge.js";
import { REPO_ROOT } from "../storage/repo-files.js";
import { GithubAccount, GithubComment, GithubCommit, GithubContentFile, GithubIssue, GithubPermission, GithubPull, GithubRepo, GithubShaObject } from "./api-schema.js";
import { githubError, githubOctokit, MAX_BLOB_BYTES, ownerOf, refPath, repoParams, type GithubAccess } from "./github-access.js";
import { GithubRepoFiles, resolveRevision } from "./github-repo-files.js";
import { formatLfsPointer, LfsClient, lfsTracker } from "./lfs.js";
import { githubPullRequestRef, githubTryVariant } from "./try-variant.js";

/** Every listing stops here (100 a page): a repo with more of the bot's threads than this is not one it serves well anyway. */
const MAX_PAGES = 20;

/** A real .gitattributes is a few lines. */
const MAX_GITATTRIBUTES_BYTES = 64 * 1024;

/** The prefix of the bot's branches: one per adapter folder. */
const BRANCH_PREFIX = "safe-lora/";

/**
 * The branch of the pull request for an adapter folder: `safe-lora/<folder>`, `safe-lora/root` for the root and
 * `safe-lora/all` for a per-repo one, with whatever git refuses in a ref name (check-ref-format) replaced.
 */
export function pullRequestBranch(folder: string): string {
  if (folder === REPO_ROOT) return `${BRANCH_PREFIX}root`;
  if (folder === "*") return `${BRANCH_PREFIX}all`;
  const segments = folder
    .split("/")
    .map((segment) =>
      segment
        // eslint-disable-next-line no-control-regex
        .replace(/[\u0000-\u0020\u007f~^:?*[\\]/g, "-")
        .replace(/@\{/g, "-")
        .replace(/\.{2,}/g, ".")
        .replace(/^\.+/, "")
        .replace(/(\.lock)+$/i, "")
        .replace(/\.+$/, ""),
    )
    .filter((segment) => segment !== "");
  const name = segments.join("/").slice(0, 200).replace(/[/.]+$/, "");
  return `${BRANCH_PREFIX}${name === "" || name === "@" ? "root" : name}`;
}

/** The id the forge gives an opening message (an issue's or pull request's body has none of its own on GitHub). */
const openingId = (num: number) => `issue-${num}`;

/**
 * GitHub as a forge, acting as a GitHub App: every call uses the installation token of the repo's owner.
 * Pull requests are built with the git data API (blobs, a tree, one commit, a branch `safe-lora/<folder>`);
 * tensors go to Git LFS when the repo's `.gitattributes` tracks them there. Every GitHub error leaves it as a
 * SafeLoraError with the Hub's codes (see `githubError`), so the bot's jobs never see an octokit class.
 */
export class GithubForge implements Forge {
  readonly name = "github" as const;
  /** The repo's configuration, where GitHub keeps such files (same schema as the Hub's safe-lora.yaml). */
  readonly repoConfigPath = ".github/safe-lora.yml";
  private readonly octokits = new Map<string, Octokit>();

  constructor(
    readonly access: GithubAccess,
    /** The App's bot user: `<slug>[bot]` and its id, as webhooks name it. */
    readonly bot: BotAccount,
  ) {}

  /** Learns the App's bot user with the App's JWT: its slug (from GET /app unless given), then the user's id. */
  static async connect(access: GithubAccess, app: App, known: { readonly slug?: string } = {}): Promise<GithubForge> {
    try {
      const slug = known.slug ?? (await app.octokit.request("GET /app")).data?.slug;
      if (typeof slug !== "string" || slug === "") throw new SafeLoraError("GitHub's GET /app named no slug for the App", "hub-unavailable");
      // The App's JWT reaches only /app routes: the user is read with an installation's token (GitHub Enterprise
      // in private mode answers nobody else), or anonymously while the App is installed nowhere.
      let reader: Octokit = githubOctokit(access, null);
      for await (const { octokit } of app.eachInstallation.iterator()) {
        reader = octokit as unknown as Octokit;
        break;
      }
      const user = GithubAccount.parse((await reader.request("GET /users/{username}", { username: `${slug}[bot]` })).data);
      // Addressed as @<slug>[bot] or, at a line's start, /safe-lora (issue 11).
      return new GithubForge(access, { id: String(user.id), name: user.login, slashCommand: "safe-lora" });
    } catch (error) {
      if (error instanceof RequestError && error.status === 401) {
        throw new SafeLoraError(`GitHub (${access.apiUrl}) refused the App's JWT (401); check APP_ID and the private key`, "usage", { cause: error });
      }
      throw githubError({ error, repo: "the App", action: null, access });
    }
  }

  /** An Octokit with the installation token of `repo`'s owner; one per token, so a rotated token gets a fresh one. */
  private async client(repo: string): Promise<{ octokit: Octokit; token: string }> {
    const token = await this.access.installationToken(ownerOf(repo));
    let octokit = this.octokits.get(token);
    if (!octokit) {
      if (this.octokits.size >= 64) this.octokits.clear();
      octokit = githubOctokit(this.access, token);
      this.octokits.set(token, octokit);
    }
    return { octokit, token };
  }

  /** Runs calls about `repo`; `action` names what the bot was doing when it is a write of its own. */
  private async call<T>(repo: string, action: string | null, run: (octokit: Octokit, token: string) => Promise<T>): Promise<T> {
    try {
      const { octokit, token } = await this.client(repo);
      return await run(octokit, token);
    } catch (error) {
      if (error instanceof RequestError && error.status === 401) this.access.forgetInstallation?.(ownerOf(repo));
      throw githubError({ error, repo, action, access: this.access });
    }
  }

  /** A GET answer checked against its schema. */
  private async get<S extends z.ZodType>(octokit: Octokit, route: string, params: Record<string, unknown>, schema: S): Promise<z.infer<S>> {
    return schema.parse((await octokit.request(route, params)).data);
  }

  /** Every item of a paginated listing, up to MAX_PAGES pages. */
  private async list<S extends z.ZodType>(octokit: Octokit, route: string, params: Record<string, unknown>, schema: S): Promise<Array<z.infer<S>>> {
    const items: Array<z.infer<S>> = [];
    let pages = 0;
    for await (const page of octokit.paginate.iterator(route, { ...params, per_page: 100 })) {
      for (const item of page.data as unknown[]) items.push(schema.parse(item));
      if (++pages >= MAX_PAGES) break;
    }
    return items;
  }

  private repoInfo(octokit: Octokit, repo: string) {
    return this.get(octokit, "GET /repos/{owner}/{repo}", repoParams(repo), GithubRepo);
  }

  /** A branch's head; a name that looks like a sha is still a branch here. */
  private branchHead(octokit: Octokit, repo: string, branch: string): Promise<string> {
    return resolveRevision(octokit, repo, `refs/heads/${branch}`);
  }

  async head(repo: string): Promise<RepoHead> {
    return this.call(repo, null, async (octokit) => {
      const info = await this.repoInfo(octokit, repo);
      return { repo, sha: await this.branchHead(octokit, repo, info.default_branch), private: info.private };
    });
  }

  async open(params: OpenParams): Promise<PinnedRepo> {
    const { repo, revision } = params;
    return this.call(repo, null, async (octokit, token) => {
      const info = await this.repoInfo(octokit, repo);
      try {
        return await GithubRepoFiles.open({ access: this.access, octokit, token, repo, revision, private: info.private });
      } catch (error) {
        // GitHub answers 422 to a well-formed sha that names no commit.
        if (error instanceof RequestError && error.status === 422) {
          throw new SafeLoraError(`${repo} has no revision "${revision.slice(0, 100)}"; use a branch, ref or commit sha that exists`, "hub-not-found", { cause: error });
        }
        throw error;
      }
    });
  }

  pullRequestHead(_repo: string, num: number): string {
    return githubPullRequestRef(num);
  }

  private statusOf(pull: { state: "open" | "closed"; draft?: boolean | undefined; merged_at?: string | null | undefined }): BotPullRequest["status"] {
    if (pull.merged_at) return "merged";
    if (pull.state === "closed") return "closed";
    return pull.draft ? "draft" : "open";
  }

  private isBot(account: { login: string } | null | undefined): boolean {
    return account?.login === this.bot.name;
  }

  async pullRequests(repo: string): Promise<BotPullRequest[]> {
    return this.call(repo, null, async (octokit) => {
      const pulls = await this.list(octokit, "GET /repos/{owner}/{repo}/pulls", { ...repoParams(repo), state: "all" }, GithubPull);
      const found: BotPullRequest[] = [];
      for (const pull of pulls.filter((p) => this.isBot(p.user))) {
        const description = pull.body ?? "";
        const folder = readPullRequestMarker(description);
        if (folder !== null) found.push({ num: pull.number, status: this.statusOf(pull), folder, description });
      }
      return found.sort((a, b) => b.num - a.num);
    });
  }

  /**
   * One commit on `parent` with `files` added or replaced. Paths `.gitattributes` sends to LFS are uploaded
   * there and committed as pointers: the REST API would store them as plain blobs, which git-lfs clients then
   * take for broken pointers, and GitHub refuses blobs over 100 MB.
   */
  private async commitFiles(octokit: Octokit, token: string, params: { repo: string; parent: string; title: string; files: readonly FileToCommit[] }): Promise<string> {
    const { repo, parent } = params;
    const where = repoParams(repo);
    const parentTree = GithubCommit.parse((await octokit.rest.git.getCommit({ ...where, commit_sha: parent })).data).tree.sha;
    const tracked = lfsTracker(await this.gitattributes(octokit, repo, parent));
    const lfs = new LfsClient(this.access, repo, token);
    const entries: Array<{ path: string; mode: "100644"; type: "blob"; sha: string }> = [];
    for (const file of params.files) {
      const bytes = new Uint8Array(await file.content.arrayBuffer());
      let content: string;
      if (tracked(file.path)) content = Buffer.from(formatLfsPointer(await lfs.upload(bytes))).toString("base64");
      else if (bytes.byteLength > (this.access.maxBlobBytes ?? MAX_BLOB_BYTES)) {
        throw new SafeLoraError(
          `${repo}: ${file.path} is ${bytes.byteLength} bytes, and GitHub refuses files over ${this.access.maxBlobBytes ?? MAX_BLOB_BYTES} bytes (100 MB on github.com) outside Git LFS; track it with LFS in .gitattributes (git lfs track "*.safetensors") and the bot will upload it there`,
          "limit-exceeded",
        );
      } else content = Buffer.from(bytes).toString("base64");
      const blob = GithubShaObject.parse((await octokit.rest.git.createBlob({ ...where, content, encoding: "base64" })).data);
      entries.push({ path: file.path, mode: "100644", type: "blob", sha: blob.sha });
    }
    const tree = GithubShaObject.parse((await octokit.rest.git.createTree({ ...where, base_tree: parentTree, tree: entries })).data);
    return GithubShaObject.parse((await octokit.rest.git.createCommit({ ...where, message: params.title, tree: tree.sha, parents: [parent] })).data).sha;
  }

  /** The root `.gitattributes` at a commit, or "" when there is none. */
  private async gitattributes(octokit: Octokit, repo: string, commit: string): Promise<string> {
    let file;
    try {
      file = GithubContentFile.parse((await octokit.rest.repos.getContent({ ...repoParams(repo), path: ".gitattributes", ref: commit })).data);
    } catch (error) {
      if (error instanceof RequestError && error.status === 404) return "";
      throw error;
    }
    if (file.size > MAX_GITATTRIBUTES_BYTES || file.encoding !== "base64") {
      throw new SafeLoraError(`${repo}: its .gitattributes is ${file.size} bytes; the bot reads at most ${MAX_GITATTRIBUTES_BYTES} to know which files go to Git LFS`, "limit-exceeded");
    }
    return Buffer.from(file.content, "base64").toString("utf8");
  }

  /**
   * Points `branch` at `commit`: a new branch, or one left by a closed or merged pull request moved over. When an
   * open pull request already uses the branch (another folder sanitised to the same name), a branch of its own.
   */
  private async placeBranch(octokit: Octokit, repo: string, branch: string, commit: string): Promise<string> {
    const where = repoParams(repo);
    try {
      await octokit.rest.git.createRef({ ...where, ref: `refs/heads/${branch}`, sha: commit });
      return branch;
    } catch (error) {
      if (!(error instanceof RequestError && error.status === 422)) throw error;
    }
    const open = await this.list(octokit, "GET /repos/{owner}/{repo}/pulls", { ...where, state: "open", head: `${where.owner}:${branch}` }, GithubPull);
    if (open.some((pull) => pull.head.ref === branch)) {
      const own = `${branch}-${commit.slice(0, 7)}`;
      await octokit.rest.git.createRef({ ...where, ref: `refs/heads/${own}`, sha: commit });
      return own;
    }
    await octokit.request(`PATCH /repos/{owner}/{repo}/git/refs/heads/${refPath(branch)}`, { ...where, sha: commit, force: true });
    return branch;
  }

  async openPullRequest(params: OpenPullRequestParams): Promise<{ num: number; commit: string }> {
    const { repo } = params;
    return this.call(repo, "open a pull request", async (octokit, token) => {
      const info = await this.repoInfo(octokit, repo);
      const commit = await this.commitFiles(octokit, token, { repo, parent: params.baseSha, title: params.title, files: params.files });
      const folder = readPullRequestMarker(params.description);
      const branch = await this.placeBranch(octokit, repo, folder === null ? `${BRANCH_PREFIX}unmarked-${commit.slice(0, 7)}` : pullRequestBranch(folder), commit);
      const pull = GithubPull.parse(
        (await octokit.rest.pulls.create({ ...repoParams(repo), title: params.title, head: branch, base: info.default_branch, body: params.description })).data,
      );
      return { num: pull.number, commit };
    });
  }

  async pushToPullRequest(params: PushParams): Promise<{ commit: string } | "stale"> {
    const { repo, num } = params;
    return this.call(repo, `commit to pull request #${num}`, async (octokit, token) => {
      const pull = await this.get(octokit, "GET /repos/{owner}/{repo}/pulls/{pull_number}", { ...repoParams(repo), pull_number: num }, GithubPull);
      if (pull.head.sha !== params.parent) return "stale";
      const commit = await this.commitFiles(octokit, token, { repo, parent: params.parent, title: params.title, files: params.files });
      try {
        // Not forced: GitHub refuses (422) when the branch moved past `parent` since it was read.
        await octokit.request(`PATCH /repos/{owner}/{repo}/git/refs/heads/${refPath(pull.head.ref)}`, { ...repoParams(repo), sha: commit, force: false });
      } catch (error) {
        if (error instanceof RequestError && error.status === 422) return "stale";
        throw error;
      }
      return { commit };
    });
  }

  async updateDescription(params: PullRequestText): Promise<void> {
    const { repo, num, text } = params;
    await this.call(repo, `edit the description of pull request #${num}`, (octokit) => octokit.rest.pulls.update({ ...repoParams(repo), pull_number: num, body: text }));
  }

  comment(params: DiscussionText): Promise<string> {
    const { repo, discussion, text } = params;
    return this.call(repo, `comment on #${discussion}`, async (octokit) => {
      const created = GithubComment.parse((await octokit.rest.issues.createComment({ ...repoParams(repo), issue_number: discussion, body: text })).data);
      return String(created.id);
    });
  }

  /** A comment of the repo, or null when there is none with that id on that discussion. */
  private async findComment(octokit: Octokit, repo: string, discussion: number, commentId: string) {
    if (!/^[1-9][0-9]{0,18}$/.test(commentId)) return null;
    try {
      const comment = await this.get(octokit, "GET /repos/{owner}/{repo}/issues/comments/{comment_id}", { ...repoParams(repo), comment_id: Number(commentId) }, GithubComment);
      return comment.issue_url.endsWith(`/issues/${discussion}`) ? comment : null;
    } catch (error) {
      if (error instanceof RequestError && error.status === 404) return null;
      throw error;
    }
  }

  editComment(params: EditCommentParams): Promise<void> {
    const { repo, discussion, commentId, text } = params;
    return this.call(repo, `edit its comment on #${discussion}`, async (octokit) => {
      const comment = await this.findComment(octokit, repo, discussion, commentId);
      if (!comment) throw new SafeLoraError(`${repo}: #${discussion} has no comment ${commentId.slice(0, 40)} to edit`, "hub-not-found");
      // An installation with issues: write may edit anyone's comment; the bot edits only its own.
      if (!this.isBot(comment.user)) throw new SafeLoraError(`${repo}: comment ${commentId} on #${discussion} is not the bot's, so the bot does not edit it`, "hub-access");
      await octokit.rest.issues.updateComment({ ...repoParams(repo), comment_id: comment.id, body: text });
    });
  }

  closePullRequest(params: CloseParams): Promise<void> {
    const { repo, num } = params;
    return this.call(repo, `close pull request #${num}`, async (octokit) => {
      await octokit.rest.issues.createComment({ ...repoParams(repo), issue_number: num, body: params.comment });
      await octokit.rest.pulls.update({ ...repoParams(repo), pull_number: num, state: "closed" });
    });
  }

  openDiscussion(params: OpenDiscussionParams): Promise<number> {
    return this.call(params.repo, "open an issue", async (octokit) => {
      const issue = GithubIssue.parse((await octokit.rest.issues.create({ ...repoParams(params.repo), title: params.title, body: params.text })).data);
      return issue.number;
    });
  }

  closeDiscussion(params: CloseDiscussionParams): Promise<void> {
    const { repo, discussion } = params;
    return this.call(repo, `close issue #${discussion}`, async (octokit) => {
      await octokit.rest.issues.createComment({ ...repoParams(repo), issue_number: discussion, body: params.comment });
      await octokit.rest.issues.update({ ...repoParams(repo), issue_number: discussion, state: "closed", state_reason: "completed" });
    });
  }

  /** The bot's issues and pull requests (GitHub lists both as issues), of the given state. */
  private async botIssues(octokit: Octokit, repo: string, state: "open" | "all") {
    const issues = await this.list(octokit, "GET /repos/{owner}/{repo}/issues", { ...repoParams(repo), state }, GithubIssue);
    return issues.filter((issue) => this.isBot(issue.user));
  }

  async botDiscussions(repo: string): Promise<BotDiscussion[]> {
    return this.call(repo, null, async (octokit) =>
      (await this.botIssues(octokit, repo, "open")).filter((issue) => !issue.pull_request).map((issue) => ({ num: issue.number, text: issue.body ?? "" })),
    );
  }

  /** The bot's comments on a thread, oldest first (GitHub lists them so). */
  private async botComments(octokit: Octokit, repo: string, num: number): Promise<BotComment[]> {
    const comments = await this.list(octokit, "GET /repos/{owner}/{repo}/issues/{issue_number}/comments", { ...repoParams(repo), issue_number: num }, GithubComment);
    return comments.filter((comment) => this.isBot(comment.user)).map((comment) => ({ id: String(comment.id), text: comment.body ?? "" }));
  }

  async botThreads(repo: string): Promise<BotThread[]> {
    return this.call(repo, null, async (octokit) => {
      const threads: BotThread[] = [];
      for (const listed of await this.botIssues(octokit, repo, "all")) {
        // Listings may leave out who closed an issue and whether a pull request was merged: the issue itself says.
        const issue = listed.state === "closed" ? await this.get(octokit, "GET /repos/{owner}/{repo}/issues/{issue_number}", { ...repoParams(repo), issue_number: listed.number }, GithubIssue) : listed;
        const isPullRequest = issue.pull_request !== undefined;
        let mergedAt = issue.pull_request?.merged_at;
        if (isPullRequest && issue.state === "closed" && mergedAt === undefined) {
          mergedAt = (await this.get(octokit, "GET /repos/{owner}/{repo}/pulls/{pull_number}", { ...repoParams(repo), pull_number: issue.number }, GithubPull)).merged_at;
        }
        const status = this.statusOf({ state: issue.state, draft: issue.draft, merged_at: mergedAt });
        threads.push({
          num: issue.number,
          isPullRequest,
          status,
          closedByBot: status === "closed" && this.isBot(issue.closed_by),
          messages: [{ id: openingId(issue.number), text: issue.body ?? "" }, ...(await this.botComments(octokit, repo, issue.number))],
        });
      }
      return threads;
    });
  }

  async listBotComments(params: DiscussionRef): Promise<BotComment[]> {
    const { repo, discussion } = params;
    return this.call(repo, null, async (octokit) => {
      const issue = await this.get(octokit, "GET /repos/{owner}/{repo}/issues/{issue_number}", { ...repoParams(repo), issue_number: discussion }, GithubIssue);
      const opening = this.isBot(issue.user) ? [{ id: openingId(discussion), text: issue.body ?? "" }] : [];
      return [...opening, ...(await this.botComments(octokit, repo, discussion))];
    });
  }

  /** 👀 on the comment: GitHub users expect an App to acknowledge a command with a reaction. */
  async react(params: CommentRef): Promise<void> {
    const { repo, discussion, commentId } = params;
    // The opening message of an issue is not a comment; its reaction would be on the issue, and the answer suffices.
    if (commentId === openingId(discussion) || !/^\d+$/.test(commentId)) return;
    await this.call(repo, "react to a comment", async (octokit) => {
      await octokit.request("POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", { ...repoParams(repo), comment_id: Number(commentId), content: "eyes" });
    });
  }

  async commentAuthor(params: CommentRef): Promise<string | null> {
    const { repo, discussion, commentId } = params;
    return this.call(repo, null, async (octokit) => {
      if (commentId === openingId(discussion)) {
        return (await this.get(octokit, "GET /repos/{owner}/{repo}/issues/{issue_number}", { ...repoParams(repo), issue_number: discussion }, GithubIssue)).user?.login ?? null;
      }
      return (await this.findComment(octokit, repo, discussion, commentId))?.user?.login ?? null;
    });
  }

  /** Write access to the repo (admin, maintain or write), by the collaborator permission API: what GitHub itself asks to push. */
  async isMaintainer(params: { readonly repo: string; readonly username: string }): Promise<boolean> {
    const { repo, username } = params;
    return this.call(repo, null, async (octokit) => {
      try {
        const answer = await this.get(octokit, "GET /repos/{owner}/{repo}/collaborators/{username}/permission", { ...repoParams(repo), username }, GithubPermission);
        return ["admin", "maintain", "write"].includes(answer.role_name ?? answer.permission) || ["admin", "write"].includes(answer.permission);
      } catch (error) {
        // No such user, or not a collaborator at all.
        if (error instanceof RequestError && error.status === 404) return false;
        throw error;
      }
    });
  }

  /** The repos of `owner` the App's installation there may see (the installation is the owner's consent). */
  async reposOf(owner: string): Promise<RepoHead[]> {
    if (owner.includes("/")) return [await this.head(owner)];
    return this.call(owner, null, async (octokit) => {
      const repos = await this.list(octokit, "GET /installation/repositories", {}, GithubRepo);
      const heads: RepoHead[] = [];
      for (const repo of repos.filter((r) => r.owner.login.toLowerCase() === owner.toLowerCase())) {
        try {
          heads.push({ repo: repo.full_name, sha: await this.branchHead(octokit, repo.full_name, repo.default_branch), private: repo.private });
        } catch (error) {
          // An empty repository has no default branch yet (404 or 409): nothing to serve there.
          if (error instanceof RequestError && (error.status === 404 || error.status === 409)) continue;
          throw error;
        }
      }
      return heads;
    });
  }

  pullRequestUrl(repo: string, num: number): string {
    return `${this.access.webUrl.replace(/\/+$/, "")}/${repo}/pull/${num}`;
  }

  tryVariant(params: TryVariantParams): TryVariant {
    return githubTryVariant({ ...params, webUrl: this.access.webUrl });
  }
}
