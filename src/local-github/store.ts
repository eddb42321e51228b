import { createHash, createPublicKey, randomBytes, type KeyObject } from "node:crypto";
import { lfsPointer } from "../local-hub/store.js";
import { repoPathProblem } from "../storage/repo-files.js";
import { diffTrees, GitObjects, type FlatTree, type GitCommit } from "./git.js";

export type Permission = "admin" | "maintain" | "write" | "triage" | "read";
const RANK: Record<Permission | "none", number> = { none: 0, read: 1, triage: 2, write: 3, maintain: 4, admin: 5 };
export const atLeast = (have: Permission | "none", need: Permission) => RANK[have] >= RANK[need];

export interface Account {
  readonly id: number;
  readonly login: string;
  readonly type: "User" | "Organization" | "Bot";
  /** A user's personal access token (users only). */
  readonly token?: string;
  /** An organisation's members and their role on its repos. */
  readonly members?: Map<number, Permission>;
}

/** Installation permissions as GitHub names them (`contents`, `pull_requests`, `issues`, `metadata`, …). */
export type AppPermissions = Record<string, "read" | "write">;

export interface GitHubAppRecord {
  readonly id: number;
  readonly slug: string;
  readonly name: string;
  readonly owner: Account;
  readonly publicKey: KeyObject;
  readonly bot: Account;
  readonly permissions: AppPermissions;
  readonly events: string[];
  webhook: { url: string; secret: string } | null;
}

export interface Installation {
  readonly id: number;
  readonly app: GitHubAppRecord;
  readonly account: Account;
  repositorySelection: "all" | "selected";
  readonly repoIds: Set<number>;
  readonly createdAt: string;
}

export interface InstallationToken {
  readonly token: string;
  readonly installation: Installation;
  readonly expiresAt: string;
  /** Narrowed to these repos when the token was asked for with `repository_ids`/`repositories`. */
  readonly repoIds: Set<number> | null;
  readonly permissions: AppPermissions;
}

export interface Reaction {
  readonly id: number;
  readonly content: string;
  readonly user: Account;
  readonly createdAt: string;
}

export interface IssueComment {
  readonly id: number;
  readonly issueNumber: number;
  readonly user: Account;
  body: string;
  readonly createdAt: string;
  updatedAt: string;
  readonly reactions: Reaction[];
}

export interface Issue {
  readonly number: number;
  readonly id: number;
  title: string;
  body: string | null;
  state: "open" | "closed";
  readonly user: Account;
  readonly createdAt: string;
  updatedAt: string;
  closedAt: string | null;
  /** Who closed it (GitHub's `closed_by`); null while open. */
  closedBy: Account | null;
  /** Set on pull requests: GitHub keeps issues and pulls in one numbering. */
  pull?: { readonly head: string; base: string; draft: boolean };
}

export interface Repo {
  readonly id: number;
  readonly owner: Account;
  readonly name: string;
  readonly fullName: string;
  private: boolean;
  defaultBranch: string;
  readonly createdAt: string;
  readonly git: GitObjects;
  /** refs/heads/main, refs/pull/1/head, … -> commit sha. */
  readonly refs: Map<string, string>;
  /** LFS objects by sha256. */
  readonly lfs: Map<string, Buffer>;
  readonly collaborators: Map<number, Permission>;
  readonly issues: Issue[];
  readonly comments: IssueComment[];
}

/** A file for the test helpers: text or bytes, stored as a git blob or (lfs: true) as an LFS object behind a pointer. */
export interface FileSpec {
  readonly path: string;
  readonly data: string | Buffer;
  readonly lfs?: boolean;
}

/** What the store tells the webhook dispatcher; the sender is who caused it. */
export type StoreEvent =
  | { kind: "push"; repo: Repo; ref: string; before: string | null; after: string | null; forced: boolean; sender: Account }
  | { kind: "issue_comment"; action: "created" | "edited" | "deleted"; repo: Repo; issue: Issue; comment: IssueComment; sender: Account }
  | { kind: "issues"; action: "opened" | "closed" | "reopened" | "edited"; repo: Repo; issue: Issue; sender: Account }
  | { kind: "pull_request"; action: "opened" | "closed" | "reopened" | "edited" | "synchronize"; repo: Repo; issue: Issue; sender: Account; before?: string }
  | { kind: "installation"; action: "created" | "deleted"; installation: Installation; sender: Account }
  | { kind: "installation_repositories"; action: "added" | "removed"; installation: Installation; repos: Repo[]; sender: Account };

const ZERO_SHA = "0".repeat(40);
export { ZERO_SHA };

const DEFAULT_PERMISSIONS: AppPermissions = { metadata: "read", contents: "write", pull_requests: "write", issues: "write" };

/** The state of a local GitHub: accounts, Apps and their installations, repos with git objects, issues and pulls. */
export class GitHubStore {
  readonly accounts = new Map<number, Account>();
  readonly apps = new Map<number, GitHubAppRecord>();
  readonly installations = new Map<number, Installation>();
  readonly tokens = new Map<string, InstallationToken>();
  readonly repos = new Map<string, Repo>();
  /** Set by the server: where events go (the webhook dispatcher). */
  onEvent: (event: StoreEvent) => void = () => {};
  private nextId = 1000;

  id(): number {
    return this.nextId++;
  }

  addUser(login: string, options: { token?: string } = {}): Account {
    const user: Account = { id: this.id(), login, type: "User", token: options.token ?? `ghp_${randomBytes(18).toString("hex")}` };
    this.accounts.set(user.id, user);
    return user;
  }

  /** An organisation whose members get `role` (default write) on all its repos. */
  addOrg(login: string, members: Array<Account | [Account, Permission]> = []): Account {
    const org: Account = { id: this.id(), login, type: "Organization", members: new Map(members.map((m) => (Array.isArray(m) ? [m[0].id, m[1]] : [m.id, "write"]))) };
    this.accounts.set(org.id, org);
    return org;
  }

  account(login: string): Account | undefined {
    return [...this.accounts.values()].find((account) => account.login.toLowerCase() === login.toLowerCase());
  }

  userByToken(token: string): Account | undefined {
    return [...this.accounts.values()].find((account) => account.token !== undefined && account.token === token);
  }

  /** Registers an App by its public key (the tests keep the private key and sign JWTs with it). */
  addApp(options: { name: string; publicKey: string | KeyObject; owner?: Account; permissions?: AppPermissions; events?: string[]; webhook?: { url: string; secret: string } }): GitHubAppRecord {
    const slug = options.name.toLowerCase().replace(/[^a-z0-9]+/g, "-");
    const bot: Account = { id: this.id(), login: `${slug}[bot]`, type: "Bot" };
    this.accounts.set(bot.id, bot);
    const app: GitHubAppRecord = {
      id: this.id(),
      slug,
      name: options.name,
      owner: options.owner ?? bot,
      publicKey: typeof options.publicKey === "string" ? createPublicKey(options.publicKey) : options.publicKey,
      bot,
      permissions: options.permissions ?? DEFAULT_PERMISSIONS,
      events: options.events ?? ["push", "issue_comment", "issues", "pull_request"],
      webhook: options.webhook ?? null,
    };
    this.apps.set(app.id, app);
    return app;
  }

  /** Installs an App on an account, for all its repos or the named ones; sends `installation.created`. */
  install(app: GitHubAppRecord, account: Account, repos: Repo[] | "all" = "all", sender: Account = account): Installation {
    const installation: Installation = {
      id: this.id(),
      app,
      account,
      repositorySelection: repos === "all" ? "all" : "selected",
      repoIds: new Set(repos === "all" ? [] : repos.map((repo) => repo.id)),
      createdAt: new Date().toISOString(),
    };
    this.installations.set(installation.id, installation);
    this.onEvent({ kind: "installation", action: "created", installation, sender });
    return installation;
  }

  uninstall(installation: Installation, sender: Account = installation.account): void {
    this.installations.delete(installation.id);
    for (const [token, record] of this.tokens) if (record.installation === installation) this.tokens.delete(token);
    this.onEvent({ kind: "installation", action: "deleted", installation, sender });
  }

  /** Adds repos to (or removes them from) a "selected" installation; sends `installation_repositories`. */
  changeInstallationRepos(installation: Installation, action: "added" | "removed", repos: Repo[], sender: Account = installation.account): void {
    installation.repositorySelection = "selected";
    for (const repo of repos) if (action === "added") installation.repoIds.add(repo.id);
    else installation.repoIds.delete(repo.id);
    this.onEvent({ kind: "installation_repositories", action, installation, repos, sender });
  }

  installationRepos(installation: Installation): Repo[] {
    return [...this.repos.values()].filter(
      (repo) => repo.owner.id === installation.account.id && (installation.repositorySelection === "all" || installation.repoIds.has(repo.id)),
    );
  }

  /** The installation of `app` that covers `repo`, if any. */
  installationFor(app: GitHubAppRecord, repo: Repo): Installation | undefined {
    return [...this.installations.values()].find((i) => i.app === app && this.installationRepos(i).includes(repo));
  }

  issueToken(installation: Installation, repoIds: Set<number> | null, permissions: AppPermissions): InstallationToken {
    const record: InstallationToken = { token: `ghs_${randomBytes(18).toString("hex")}`, installation, expiresAt: new Date(Date.now() + 3600_000).toISOString(), repoIds, permissions };
    this.tokens.set(record.token, record);
    return record;
  }

  /** A user's role on a repo: the owner is admin, org members and collaborators have theirs, else none. */
  userPermission(repo: Repo, user: Account): Permission | "none" {
    if (repo.owner.id === user.id) return "admin";
    const roles: Array<Permission | "none"> = [repo.collaborators.get(user.id) ?? "none", repo.owner.members?.get(user.id) ?? "none"];
    return roles.sort((a, b) => RANK[b] - RANK[a])[0]!;
  }

  /** Gives a user a role on one repo (an outside collaborator, or more than their organisation role). */
  addCollaborator(repo: Repo, user: Account, role: Permission): void {
    repo.collaborators.set(user.id, role);
  }

  /** Creates a repo with an initial commit on its default branch holding `files` (no webhook: it is seeding). */
  createRepo(fullName: string, options: { private?: boolean; defaultBranch?: string; files?: FileSpec[] } = {}): Repo {
    const [ownerLogin, name] = fullName.split("/");
    const owner = this.account(ownerLogin ?? "");
    if (!owner || !name) throw new Error(`createRepo(${JSON.stringify(fullName)}): give "owner/name" with an owner added first (addUser or addOrg)`);
    if (this.repos.has(fullName.toLowerCase())) throw new Error(`repo ${fullName} exists`);
    const repo: Repo = {
      id: this.id(),
      owner,
      name,
      fullName: `${owner.login}/${name}`,
      private: options.private ?? false,
      defaultBranch: options.defaultBranch ?? "main",
      createdAt: new Date().toISOString(),
      git: new GitObjects(),
      refs: new Map(),
      lfs: new Map(),
      collaborators: new Map(),
      issues: [],
      comments: [],
    };
    this.repos.set(repo.fullName.toLowerCase(), repo);
    const commit = this.commitFiles(repo, null, options.files ?? [{ path: "README.md", data: `# ${name}\n` }], "Initial commit", owner);
    repo.refs.set(`refs/heads/${repo.defaultBranch}`, commit.sha);
    return repo;
  }

  repo(fullName: string): Repo | undefined {
    return this.repos.get(fullName.toLowerCase());
  }

  /**
   * Stores the files (LFS ones as pointer + object) and writes a commit on `parent`; moves no ref. No size
   * limit here: tests seed files the API would refuse, to see how a client copes with them.
   */
  commitFiles(repo: Repo, parent: string | null, files: FileSpec[], message: string, author: Account, deletions: string[] = []): GitCommit {
    const flat: FlatTree = parent ? repo.git.flatten(repo.git.commits.get(parent)!.tree) : new Map();
    for (const file of files) {
      const problem = repoPathProblem(file.path);
      if (problem) throw new Error(`invalid path ${JSON.stringify(file.path)}: ${problem}`);
      const data = Buffer.from(file.data);
      let blob: Buffer = data;
      if (file.lfs) {
        const oid = createHash("sha256").update(data).digest("hex");
        repo.lfs.set(oid, data);
        blob = lfsPointer(oid, data.byteLength);
      }
      flat.set(file.path, { mode: "100644", sha: repo.git.writeBlob(blob) });
    }
    for (const path of deletions) flat.delete(path);
    const who = { name: author.login, email: `${author.id}+${author.login}@users.noreply.github.com`, date: new Date().toISOString() };
    return repo.git.writeCommit({ tree: repo.git.buildTree(flat), parents: parent ? [parent] : [], message, author: who, committer: who });
  }

  /**
   * Moves a ref (null deletes it) and tells the dispatcher: a push for branches, and `synchronize` for the open
   * pulls whose head is that branch (whose refs/pull/N/head follow it, as on GitHub).
   */
  setRef(repo: Repo, ref: string, sha: string | null, sender: Account, forced = false): void {
    const before = repo.refs.get(ref) ?? null;
    if (sha) repo.refs.set(ref, sha);
    else repo.refs.delete(ref);
    // GitHub sends push for branches and tags; pull refs move with their branch and send nothing of their own.
    if (!ref.startsWith("refs/heads/") && !ref.startsWith("refs/tags/")) return;
    this.onEvent({ kind: "push", repo, ref, before, after: sha, forced, sender });
    if (!ref.startsWith("refs/heads/")) return;
    const branch = ref.slice("refs/heads/".length);
    for (const issue of repo.issues) {
      if (issue.pull?.head !== branch || issue.state !== "open" || !sha) continue;
      repo.refs.set(`refs/pull/${issue.number}/head`, sha);
      issue.updatedAt = new Date().toISOString();
      this.onEvent({ kind: "pull_request", action: "synchronize", repo, issue, sender, ...(before ? { before } : {}) });
    }
  }

  /** A commit of `files` on `branch` (created from the default branch if new) as `user`, with its webhooks. */
  pushAs(user: Account, repo: Repo, files: FileSpec[], options: { branch?: string; message?: string; delete?: string[] } = {}): GitCommit {
    const ref = `refs/heads/${options.branch ?? repo.defaultBranch}`;
    const parent = repo.refs.get(ref) ?? repo.refs.get(`refs/heads/${repo.defaultBranch}`) ?? null;
    const commit = this.commitFiles(repo, parent, files, options.message ?? `Update ${files.map((f) => f.path).join(", ")}`, user, options.delete ?? []);
    this.setRef(repo, ref, commit.sha, user);
    return commit;
  }

  /** The files a commit changed against its first parent. */
  commitChanges(repo: Repo, sha: string): { added: string[]; modified: string[]; removed: string[] } {
    const commit = repo.git.commits.get(sha);
    if (!commit) return { added: [], modified: [], removed: [] };
    const parent = commit.parents[0] ? repo.git.commits.get(commit.parents[0]) : undefined;
    return diffTrees(parent ? repo.git.flatten(parent.tree) : new Map(), repo.git.flatten(commit.tree));
  }

  openIssue(repo: Repo, user: Account, title: string, body: string | null, pull?: Issue["pull"]): Issue {
    const now = new Date().toISOString();
    const issue: Issue = { number: repo.issues.length + 1, id: this.id(), title, body, state: "open", user, createdAt: now, updatedAt: now, closedAt: null, closedBy: null, ...(pull ? { pull } : {}) };
    repo.issues.push(issue);
    if (pull) repo.refs.set(`refs/pull/${issue.number}/head`, repo.refs.get(`refs/heads/${pull.head}`)!);
    this.onEvent(pull ? { kind: "pull_request", action: "opened", repo, issue, sender: user } : { kind: "issues", action: "opened", repo, issue, sender: user });
    return issue;
  }

  /** Edits title, body or state of an issue or pull request, with the matching webhook. */
  editIssue(repo: Repo, issue: Issue, changes: { title?: string; body?: string | null; state?: "open" | "closed"; base?: string }, sender: Account): void {
    const now = new Date().toISOString();
    let action: "closed" | "reopened" | "edited" | null = null;
    if (changes.title !== undefined || changes.body !== undefined || (changes.base !== undefined && issue.pull)) action = "edited";
    if (changes.title !== undefined) issue.title = changes.title;
    if (changes.body !== undefined) issue.body = changes.body;
    if (changes.base !== undefined && issue.pull) issue.pull.base = changes.base;
    if (changes.state && changes.state !== issue.state) {
      issue.state = changes.state;
      issue.closedAt = changes.state === "closed" ? now : null;
      issue.closedBy = changes.state === "closed" ? sender : null;
      action = changes.state === "closed" ? "closed" : "reopened";
    }
    issue.updatedAt = now;
    if (action) this.onEvent(issue.pull ? { kind: "pull_request", action, repo, issue, sender } : { kind: "issues", action, repo, issue, sender });
  }

  /** A comment on an issue or pull request, as `user`, with its `issue_comment.created` webhook. */
  comment(repo: Repo, issue: Issue, user: Account, body: string): IssueComment {
    const now = new Date().toISOString();
    const comment: IssueComment = { id: this.id(), issueNumber: issue.number, user, body, createdAt: now, updatedAt: now, reactions: [] };
    repo.comments.push(comment);
    this.onEvent({ kind: "issue_comment", action: "created", repo, issue, comment, sender: user });
    return comment;
  }

  editComment(repo: Repo, comment: IssueComment, body: string, sender: Account): void {
    comment.body = body;
    comment.updatedAt = new Date().toISOString();
    const issue = repo.issues.find((i) => i.number === comment.issueNumber)!;
    this.onEvent({ kind: "issue_comment", action: "edited", repo, issue, comment, sender });
  }
}
