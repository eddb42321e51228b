import { createHash, createHmac, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { repoPathProblem } from "../storage/repo-files.js";
import { actorOf, AuthError, callerOf, type Caller } from "./auth.js";
import { diffTrees, type FlatTree } from "./git.js";
import { Render } from "./render.js";
import * as S from "./schema.js";
import { atLeast, GitHubStore, type Account, type Issue, type Repo } from "./store.js";
import { GitHubWebhooks } from "./webhooks.js";

const DOCS = "https://docs.github.com/rest";

/** An answer in GitHub's error shape: `{message, documentation_url, status}`, plus `errors` for 422s. */
export class GitHubHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: unknown[],
  ) {
    super(message);
  }
}

const notFound = () => new GitHubHttpError(404, "Not Found");

export interface LocalGitHubOptions {
  readonly store?: GitHubStore;
  /** GitHub's file limit (100 MB): bigger blobs are refused, bigger files are not served by the contents API. */
  readonly maxFileBytes?: number;
  /** The largest LFS object accepted (GitHub Free's is 2 GB). */
  readonly maxLfsBytes?: number;
}

/** Bodies of ordinary JSON requests; git data requests may carry a whole file, base64-encoded. */
const MAX_JSON_BODY = 1024 * 1024;
/** Contents of one file inline (base64 in JSON) up to this size; GitHub serves larger ones raw only. */
const INLINE_CONTENT_BYTES = 1024 * 1024;

type Area = "metadata" | "contents" | "pull_requests" | "issues";

interface Ctx {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  readonly url: URL;
  readonly caller: Caller;
  readonly params: string[];
}

type Handler = (ctx: Ctx) => Promise<void> | void;

/**
 * A local stand-in for GitHub, for tests: the REST, git data, contents and LFS calls a GitHub App bot makes,
 * with App JWT and installation-token auth, and signed webhooks for the changes. Octokit talks to it through
 * `baseUrl` unchanged.
 */
export class LocalGitHub {
  readonly store: GitHubStore;
  readonly webhooks: GitHubWebhooks;
  readonly render: Render;
  /** Every request, in order: method and path with query. */
  readonly requests: Array<{ method: string; path: string }> = [];
  readonly maxFileBytes: number;
  readonly maxLfsBytes: number;
  private readonly ticketKey = randomBytes(32);
  private readonly routes: Array<[string, RegExp, Handler]> = [];
  private server: Server | null = null;
  private baseUrl = "";

  constructor(options: LocalGitHubOptions = {}) {
    this.store = options.store ?? new GitHubStore();
    this.maxFileBytes = options.maxFileBytes ?? 100 * 1024 * 1024;
    this.maxLfsBytes = options.maxLfsBytes ?? 2 * 1024 * 1024 * 1024;
    this.render = new Render(() => this.baseUrl);
    this.webhooks = new GitHubWebhooks(this.store, this.render);
    this.store.onEvent = (event) => this.webhooks.emit(event);
    this.defineRoutes();
  }

  get url(): string {
    return this.baseUrl;
  }

  async start(port = 0): Promise<this> {
    this.server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => this.fail(response, error));
    });
    await new Promise<void>((resolve) => this.server!.listen(port, "127.0.0.1", resolve));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    await this.webhooks.settled();
    await new Promise<void>((resolve) => {
      this.server?.closeAllConnections();
      this.server?.close(() => resolve());
    });
  }

  private fail(response: ServerResponse, error: unknown): void {
    if (response.headersSent) {
      response.destroy();
      return;
    }
    const status = error instanceof GitHubHttpError ? error.status : error instanceof AuthError ? 401 : 500;
    const message = error instanceof Error ? error.message : String(error);
    const errors = error instanceof GitHubHttpError && error.errors ? { errors: error.errors } : {};
    this.send(response, status, { message, ...errors, documentation_url: DOCS, status: String(status) });
  }

  private send(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = body === undefined ? "" : JSON.stringify(body);
    response.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "X-GitHub-Media-Type": "github.v3; format=json", ...headers }).end(text);
  }

  // ---- request plumbing ----

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://localhost");
    const method = request.method ?? "GET";
    this.requests.push({ method, path: url.pathname + url.search });
    const caller = callerOf(this.store, request.headers.authorization);
    for (const [routeMethod, pattern, handler] of this.routes) {
      if (routeMethod !== method) continue;
      const match = pattern.exec(url.pathname);
      if (!match) continue;
      return handler({ request, response, url, caller, params: match.slice(1).map((part) => decodeURIComponent(part ?? "")) });
    }
    throw notFound();
  }

  private on(method: string, pattern: RegExp, handler: Handler): void {
    this.routes.push([method, pattern, handler]);
  }

  /** Reads a body of at most `limit` bytes; a longer one is refused before it is held in memory. */
  private async body(request: IncomingMessage, limit: number): Promise<Buffer> {
    const declared = Number(request.headers["content-length"] ?? "0");
    if (declared > limit) throw new GitHubHttpError(413, `Request body is ${declared} bytes; the limit here is ${limit}`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of request) {
      size += (chunk as Buffer).byteLength;
      if (size > limit) throw new GitHubHttpError(413, `Request body is over the limit of ${limit} bytes`);
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }

  private async json<T>(request: IncomingMessage, schema: z.ZodType<T>, limit = MAX_JSON_BODY): Promise<T> {
    const text = (await this.body(request, limit)).toString("utf8");
    let value: unknown;
    try {
      value = text.trim() === "" ? undefined : JSON.parse(text);
    } catch {
      throw new GitHubHttpError(400, "Problems parsing JSON");
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new GitHubHttpError(422, `Invalid request: ${issue?.path.join(".") || "body"} ${issue?.message ?? "is invalid"}`, parsed.error.issues.map((i) => ({ field: i.path.join("."), code: "invalid", message: i.message })));
    }
    return parsed.data;
  }

  /** Lists are paged by `per_page` (at most 100) and `page`, with a `Link` header as GitHub sends. */
  private page<T>(ctx: Ctx, items: T[]): { items: T[]; headers: Record<string, string> } {
    const perPage = Math.min(100, Math.max(1, Number(ctx.url.searchParams.get("per_page") ?? "30") || 30));
    const page = Math.max(1, Number(ctx.url.searchParams.get("page") ?? "1") || 1);
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const link = (n: number, rel: string) => {
      const target = new URL(ctx.url.pathname + ctx.url.search, this.baseUrl);
      target.searchParams.set("per_page", String(perPage));
      target.searchParams.set("page", String(n));
      return `<${target.href}>; rel="${rel}"`;
    };
    const links = [...(page > 1 ? [link(page - 1, "prev"), link(1, "first")] : []), ...(page < last ? [link(page + 1, "next"), link(last, "last")] : [])];
    return { items: items.slice((page - 1) * perPage, page * perPage), headers: links.length > 0 ? { Link: links.join(", ") } : {} };
  }

  private sendPage<T>(ctx: Ctx, items: T[], render: (item: T) => unknown): void {
    const { items: slice, headers } = this.page(ctx, items);
    this.send(ctx.response, 200, slice.map(render), headers);
  }

  // ---- access ----

  private app(ctx: Ctx) {
    if (ctx.caller.kind !== "app") throw new GitHubHttpError(401, "A JSON web token could not be decoded: this endpoint needs the App's JWT as `Authorization: Bearer <jwt>`");
    return ctx.caller.app;
  }

  /**
   * The repo if the caller may do `need` in `area`; a repo the caller may not see is 404, as on GitHub, so
   * that private repos do not leak. Installations reach their repos only, with the App's permissions.
   */
  private repo(ctx: Ctx, owner: string, name: string, area: Area = "metadata", need: "read" | "write" = "read"): Repo {
    const repo = this.store.repo(`${owner}/${name}`);
    if (!repo) throw notFound();
    const caller = ctx.caller;
    if (caller.kind === "app") throw new GitHubHttpError(403, "An App's JWT only reaches /app endpoints: authenticate as an installation (POST /app/installations/{id}/access_tokens) for repository endpoints");
    if (caller.kind === "installation") {
      const { installation, repoIds, permissions } = caller.token;
      if (!this.store.installationRepos(installation).includes(repo) || (repoIds && !repoIds.has(repo.id))) throw notFound();
      const granted = area === "metadata" ? "read" : permissions[area];
      if (!granted || (need === "write" && granted !== "write")) throw new GitHubHttpError(403, "Resource not accessible by integration");
      return repo;
    }
    const role = caller.kind === "user" ? this.store.userPermission(repo, caller.user) : "none";
    if (repo.private && role === "none") throw notFound();
    if (need === "write") {
      if (caller.kind === "anonymous") throw new GitHubHttpError(401, "Requires authentication");
      // Anyone signed in may open issues and comment on a repo they can read; the rest needs write access.
      if (area !== "issues" && !atLeast(role, "write")) throw new GitHubHttpError(403, `Must have write access to ${repo.fullName}`);
    }
    return repo;
  }

  private actor(ctx: Ctx): Account {
    const actor = actorOf(ctx.caller);
    if (!actor) throw new GitHubHttpError(401, "Requires authentication");
    return actor;
  }

  /** A branch, tag, `refs/...` name or commit sha (full or at least 7 hex digits) -> commit sha. */
  private resolve(repo: Repo, ref: string): string | undefined {
    const direct = repo.refs.get(ref) ?? repo.refs.get(`refs/heads/${ref}`) ?? repo.refs.get(`refs/tags/${ref}`) ?? repo.refs.get(`refs/${ref}`);
    if (direct) return direct;
    if (/^[0-9a-f]{7,40}$/.test(ref)) return [...repo.git.commits.keys()].find((sha) => sha.startsWith(ref));
    return undefined;
  }

  private issue(repo: Repo, number: string, pullsOnly = false): Issue {
    const issue = repo.issues.find((i) => i.number === Number(number));
    if (!issue || (pullsOnly && !issue.pull)) throw notFound();
    return issue;
  }

  private base64Lines(data: Buffer): string {
    // GitHub wraps base64 content at 60 characters, with a trailing newline.
    return (data.toString("base64").match(/.{1,60}/g) ?? []).map((line) => `${line}\n`).join("");
  }

  private defineRoutes(): void {
    const R = "/repos/([^/]+)/([^/]+)";
    // ---- the App and its installations ----
    this.on("GET", /^\/app$/, (ctx) => {
      const app = this.app(ctx);
      this.send(ctx.response, 200, {
        id: app.id,
        slug: app.slug,
        node_id: Buffer.from(`App:${app.id}`).toString("base64"),
        name: app.name,
        owner: this.render.account(app.owner),
        permissions: app.permissions,
        events: app.events,
        installations_count: [...this.store.installations.values()].filter((i) => i.app === app).length,
      });
    });
    this.on("GET", /^\/app\/installations$/, (ctx) => {
      const app = this.app(ctx);
      this.sendPage(ctx, [...this.store.installations.values()].filter((i) => i.app === app), (i) => this.render.installation(i));
    });
    this.on("GET", /^\/app\/installations\/(\d+)$/, (ctx) => {
      const app = this.app(ctx);
      const installation = this.store.installations.get(Number(ctx.params[0]));
      if (!installation || installation.app !== app) throw notFound();
      this.send(ctx.response, 200, this.render.installation(installation));
    });
    this.on("GET", new RegExp(`^${R}/installation$`), (ctx) => {
      const app = this.app(ctx);
      const repo = this.store.repo(`${ctx.params[0]}/${ctx.params[1]}`);
      const installation = repo && this.store.installationFor(app, repo);
      if (!installation) throw notFound();
      this.send(ctx.response, 200, this.render.installation(installation));
    });
    this.on("POST", /^\/app\/installations\/(\d+)\/access_tokens$/, async (ctx) => {
      const app = this.app(ctx);
      const installation = this.store.installations.get(Number(ctx.params[0]));
      if (!installation || installation.app !== app) throw notFound();
      const body = await this.json(ctx.request, S.AccessTokenBody);
      const available = this.store.installationRepos(installation);
      let repoIds: Set<number> | null = null;
      if (body.repositories || body.repository_ids) {
        const wanted = [...(body.repository_ids ?? []).map((id) => available.find((r) => r.id === id)), ...(body.repositories ?? []).map((n) => available.find((r) => r.name.toLowerCase() === n.toLowerCase()))];
        if (wanted.some((r) => !r)) throw new GitHubHttpError(422, "There is at least one repository that does not exist or is not accessible to the parent installation.");
        repoIds = new Set(wanted.map((r) => r!.id));
      }
      for (const [area, level] of Object.entries(body.permissions ?? {})) {
        const has = app.permissions[area];
        if (!has || (level === "write" && has !== "write")) throw new GitHubHttpError(422, `The permissions requested are not granted to this installation: ${area}:${level}`);
      }
      const token = this.store.issueToken(installation, repoIds, body.permissions ?? app.permissions);
      this.send(ctx.response, 201, {
        token: token.token,
        expires_at: token.expiresAt,
        permissions: token.permissions,
        repository_selection: repoIds ? "selected" : installation.repositorySelection,
        ...(repoIds ? { repositories: available.filter((r) => repoIds.has(r.id)).map((r) => this.render.repo(r)) } : {}),
      });
    });
    this.on("GET", /^\/installation\/repositories$/, (ctx) => {
      if (ctx.caller.kind !== "installation") throw new GitHubHttpError(403, "This endpoint needs an installation token");
      const { installation, repoIds } = ctx.caller.token;
      const repos = this.store.installationRepos(installation).filter((r) => !repoIds || repoIds.has(r.id));
      const { items, headers } = this.page(ctx, repos);
      this.send(ctx.response, 200, { total_count: repos.length, repository_selection: installation.repositorySelection, repositories: items.map((r) => this.render.repo(r)) }, headers);
    });

    this.on("GET", /^\/users\/([^/]+)$/, (ctx) => {
      const account = this.store.account(ctx.params[0]!);
      if (!account) throw notFound();
      this.send(ctx.response, 200, this.render.account(account));
    });

    // ---- repos and permissions ----
    this.on("GET", new RegExp(`^${R}$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!);
      this.send(ctx.response, 200, this.render.repo(repo));
    });
    this.on("GET", new RegExp(`^${R}/collaborators/([^/]+)/permission$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!);
      const user = this.store.account(ctx.params[2]!);
      if (!user || user.type === "Organization") throw new GitHubHttpError(404, `${ctx.params[2]} is not a user`);
      const role = this.store.userPermission(repo, user);
      // GitHub's `permission` folds maintain into write and triage into read; `role_name` keeps the role.
      const permission = role === "maintain" ? "write" : role === "triage" ? "read" : role === "none" && !repo.private ? "read" : role;
      this.send(ctx.response, 200, { permission, role_name: role === "none" && !repo.private ? "read" : role, user: this.render.account(user) });
    });

    // ---- git data ----
    this.on("GET", new RegExp(`^${R}/git/ref/(.+)$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "contents");
      const ref = `refs/${ctx.params[2]}`;
      const sha = repo.refs.get(ref);
      if (!sha) throw notFound();
      this.send(ctx.response, 200, this.render.ref(repo, ref, sha));
    });
    this.on("GET", new RegExp(`^${R}/git/matching-refs/(.*)$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "contents");
      const prefix = `refs/${ctx.params[2]}`;
      const refs = [...repo.refs].filter(([ref]) => ref.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : 1));
      this.send(ctx.response, 200, refs.map(([ref, sha]) => this.render.ref(repo, ref, sha)));
    });
    this.on("POST", new RegExp(`^${R}/git/refs$`), async (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "contents", "write");
      const body = await this.json(ctx.request, S.CreateRefBody);
      if (repo.refs.has(body.ref)) throw new GitHubHttpError(422, "Reference already exists");
      if (!repo.git.commits.has(body.sha)) throw new GitHubHttpError(422, "Object does not exist");
      if (body.ref.startsWith("refs/pull/")) throw new GitHubHttpError(422, "refs/pull/ is read-only: GitHub moves it with the pull request's head");
      this.store.setRef(repo, body.ref, body.sha, this.actor(ctx));
      this.send(ctx.response, 201, this.render.ref(repo, body.ref, body.sha), { Location: `${this.baseUrl}/repos/${repo.fullName}/git/${body.ref}` });
    });
    this.on("PATCH", new RegExp(`^${R}/git/refs/(.+)$`), async (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "contents", "write");
      const ref = `refs/${ctx.params[2]!.replace(/^refs\//, "")}`;
      const body = await this.json(ctx.request, S.UpdateRefBody);
      if (ref.startsWith("refs/pull/")) throw new GitHubHttpError(422, "refs/pull/ is read-only: GitHub moves it with the pull request's head");
      const old = repo.refs.get(ref);
      if (!old) throw new GitHubHttpError(422, "Reference does not exist");
      if (!repo.git.commits.has(body.sha)) throw new GitHubHttpError(422, "Object does not exist");
      const fastForward = repo.git.isAncestor(old, body.sha);
      if (!body.force && !fastForward) throw new GitHubHttpError(422, "Update is not a fast forward");
      this.store.setRef(repo, ref, body.sha, this.actor(ctx), !fastForward);
      this.send(ctx.response, 200, this.render.ref(repo, ref, body.sha));
    });
    this.on("DELETE", new RegExp(`^${R}/git/refs/(.+)$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "contents", "write");
      const ref = `refs/${ctx.params[2]!.replace(/^refs\//, "")}`;
      if (!repo.refs.has(ref)) throw new GitHubHttpError(422, "Reference does not exist");
      if (ref.startsWith("refs/pull/")) throw new GitHubHttpError(422, "refs/pull/ is read-only: GitHub moves it with the pull request's head");
      this.store.setRef(repo, ref, null, this.actor(ctx));
      ctx.response.writeHead(204).end();
    });
    this.on("GET", new RegExp(`^${R}/git/commits/([0-9a-f]{40})$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "contents");
      const commit = repo.git.commits.get(ctx.params[2]!);
      if (!commit) throw notFound();
      this.send(ctx.response, 200, this.render.commit(repo, commit));
    });
    this.on("POST", new RegExp(`^${R}/git/commits$`), async (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "contents", "write");
      const body = await this.json(ctx.request, S.CreateCommitBody);
      if (!repo.git.trees.has(body.tree)) throw new GitHubHttpError(422, "Tree SHA does not exist");
      for (const parent of body.parents) if (!repo.git.commits.has(parent)) throw new GitHubHttpError(422, "Parent SHA does not exist or is not a commit object");
      const actor = this.actor(ctx);
      const now = new Date().toISOString();
      const fallback = { name: actor.login, email: `${actor.id}+${actor.login}@users.noreply.github.com`, date: now };
      const author = body.author ? { ...body.author, date: body.author.date ?? now } : fallback;
      const committer = body.committer ? { ...body.committer, date: body.committer.date ?? now } : author;
      const commit = repo.git.writeCommit({ tree: body.tree, parents: body.parents, message: body.message, author, committer });
      this.send(ctx.response, 201, this.render.commit(repo, commit));
    });
    this.on("GET", new RegExp(`^${R}/git/trees/(.+)$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "contents");
      const wanted = ctx.params[2]!;
      const commitSha = repo.git.trees.has(wanted) ? undefined : this.resolve(repo, wanted);
      const sha = commitSha ? repo.git.commits.get(commitSha)!.tree : wanted;
      if (!repo.git.trees.has(sha)) throw notFound();
      const recursive = ctx.url.searchParams.has("recursive") && !["0", "false"].includes(ctx.url.searchParams.get("recursive")!);
      const entries = recursive ? repo.git.walk(sha) : repo.git.trees.get(sha)!;
      this.send(ctx.response, 200, {
        sha,
        url: `${this.baseUrl}/repos/${repo.fullName}/git/trees/${sha}`,
        tree: entries.map((entry) => ({
          ...entry,
          ...(entry.type === "blob" ? { size: repo.git.blobs.get(entry.sha)?.byteLength ?? 0 } : {}),
          url: `${this.baseUrl}/repos/${repo.fullName}/git/${entry.type === "blob" ? "blobs" : "trees"}/${entry.sha}`,
        })),
        truncated: false,
      });
    });
    this.on("POST", new RegExp(`^${R}/git/trees$`), async (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "contents", "write");
      const body = await this.json(ctx.request, S.CreateTreeBody, this.maxGitBody());
      if (body.base_tree && !repo.git.trees.has(body.base_tree)) throw new GitHubHttpError(422, "base_tree is not a valid tree oid");
      const flat: FlatTree = body.base_tree ? repo.git.flatten(body.base_tree) : new Map();
      for (const entry of body.tree) {
        const problem = repoPathProblem(entry.path);
        if (problem) throw new GitHubHttpError(422, `tree.path ${JSON.stringify(entry.path)} is invalid: ${problem}`);
        if (entry.sha === null) {
          // A null sha deletes the path, or everything below it.
          for (const path of [...flat.keys()]) if (path === entry.path || path.startsWith(`${entry.path}/`)) flat.delete(path);
          continue;
        }
        if (entry.mode === "040000") {
          if (!entry.sha || !repo.git.trees.has(entry.sha)) throw new GitHubHttpError(422, `tree.sha ${entry.sha} is not a valid tree`);
          for (const [path, value] of repo.git.flatten(entry.sha, `${entry.path}/`)) flat.set(path, value);
          continue;
        }
        let sha = entry.sha;
        if (entry.content !== undefined) sha = repo.git.writeBlob(this.checkFileSize(Buffer.from(entry.content, "utf8")));
        if (!sha || !repo.git.blobs.has(sha)) throw new GitHubHttpError(422, `tree.sha ${entry.sha} is not a valid blob: give an existing blob's sha or content`);
        flat.set(entry.path, { mode: entry.mode, sha });
      }
      const sha = repo.git.buildTree(flat);
      const entries = repo.git.trees.get(sha)!;
      this.send(ctx.response, 201, { sha, url: `${this.baseUrl}/repos/${repo.fullName}/git/trees/${sha}`, tree: entries, truncated: false });
    });
    this.on("GET", new RegExp(`^${R}/git/blobs/([0-9a-f]{40})$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "contents");
      const blob = repo.git.blobs.get(ctx.params[2]!);
      if (!blob) throw notFound();
      if (blob.byteLength > this.maxFileBytes) throw this.tooLarge();
      this.send(ctx.response, 200, { sha: ctx.params[2], node_id: Buffer.from(`Blob:${ctx.params[2]}`).toString("base64"), size: blob.byteLength, url: `${this.baseUrl}/repos/${repo.fullName}/git/blobs/${ctx.params[2]}`, content: this.base64Lines(blob), encoding: "base64" });
    });
    this.on("POST", new RegExp(`^${R}/git/blobs$`), async (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "contents", "write");
      const body = await this.json(ctx.request, S.CreateBlobBody, this.maxGitBody());
      const sha = repo.git.writeBlob(this.checkFileSize(Buffer.from(body.content, body.encoding === "base64" ? "base64" : "utf8")));
      this.send(ctx.response, 201, { sha, url: `${this.baseUrl}/repos/${repo.fullName}/git/blobs/${sha}` });
    });

    // ---- contents ----
    this.on("GET", new RegExp(`^${R}/contents(?:/(.*))?$`), (ctx) => this.contents(ctx));

    // ---- pulls ----
    this.on("GET", new RegExp(`^${R}/pulls$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "pull_requests");
      const state = ctx.url.searchParams.get("state") ?? "open";
      const head = ctx.url.searchParams.get("head");
      const base = ctx.url.searchParams.get("base");
      const pulls = repo.issues
        .filter((i) => i.pull && (state === "all" || i.state === state))
        .filter((i) => !head || `${repo.owner.login}:${i.pull!.head}`.toLowerCase() === head.toLowerCase())
        .filter((i) => !base || i.pull!.base === base)
        .reverse();
      this.sendPage(ctx, pulls, (i) => this.render.pull(repo, i));
    });
    this.on("POST", new RegExp(`^${R}/pulls$`), async (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "pull_requests", "write");
      const body = await this.json(ctx.request, S.CreatePullBody);
      const head = body.head.includes(":") ? body.head.slice(body.head.indexOf(":") + 1) : body.head;
      if (body.head.includes(":") && body.head.split(":")[0]!.toLowerCase() !== repo.owner.login.toLowerCase()) {
        throw new GitHubHttpError(422, "Validation Failed", [{ resource: "PullRequest", field: "head", code: "invalid", message: "pulls from forks are not supported by this local GitHub" }]);
      }
      const headSha = repo.refs.get(`refs/heads/${head}`);
      const baseSha = repo.refs.get(`refs/heads/${body.base}`);
      if (!headSha) throw new GitHubHttpError(422, "Validation Failed", [{ resource: "PullRequest", field: "head", code: "invalid" }]);
      if (!baseSha) throw new GitHubHttpError(422, "Validation Failed", [{ resource: "PullRequest", field: "base", code: "invalid" }]);
      if (repo.issues.some((i) => i.pull?.head === head && i.pull.base === body.base && i.state === "open")) {
        throw new GitHubHttpError(422, "Validation Failed", [{ resource: "PullRequest", code: "custom", message: `A pull request already exists for ${repo.owner.login}:${head}.` }]);
      }
      if (repo.git.isAncestor(headSha, baseSha)) {
        throw new GitHubHttpError(422, "Validation Failed", [{ resource: "PullRequest", code: "custom", message: `No commits between ${body.base} and ${head}` }]);
      }
      const issue = this.store.openIssue(repo, this.actor(ctx), body.title, body.body ?? null, { head, base: body.base, draft: body.draft });
      this.send(ctx.response, 201, this.render.pull(repo, issue), { Location: `${this.baseUrl}/repos/${repo.fullName}/pulls/${issue.number}` });
    });
    this.on("GET", new RegExp(`^${R}/pulls/(\\d+)$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "pull_requests");
      this.send(ctx.response, 200, this.render.pull(repo, this.issue(repo, ctx.params[2]!, true)));
    });
    this.on("PATCH", new RegExp(`^${R}/pulls/(\\d+)$`), async (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "pull_requests", "write");
      const issue = this.issue(repo, ctx.params[2]!, true);
      const body = await this.json(ctx.request, S.UpdatePullBody);
      if (body.base !== undefined && !repo.refs.has(`refs/heads/${body.base}`)) throw new GitHubHttpError(422, "Validation Failed", [{ resource: "PullRequest", field: "base", code: "invalid" }]);
      this.store.editIssue(repo, issue, body, this.actor(ctx));
      this.send(ctx.response, 200, this.render.pull(repo, issue));
    });
    this.on("GET", new RegExp(`^${R}/pulls/(\\d+)/files$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "pull_requests");
      const issue = this.issue(repo, ctx.params[2]!, true);
      const head = repo.refs.get(`refs/pull/${issue.number}/head`)!;
      const baseTip = repo.refs.get(`refs/heads/${issue.pull!.base}`) ?? head;
      // GitHub diffs against the merge base, so commits added to the base since do not show.
      const base = repo.git.mergeBase(head, baseTip) ?? baseTip;
      const before = repo.git.flatten(repo.git.commits.get(base)!.tree);
      const after = repo.git.flatten(repo.git.commits.get(head)!.tree);
      const diff = diffTrees(before, after);
      const files = [...diff.added.map((f) => [f, "added"] as const), ...diff.modified.map((f) => [f, "modified"] as const), ...diff.removed.map((f) => [f, "removed"] as const)].sort(([a], [b]) => (a < b ? -1 : 1));
      this.sendPage(ctx, files, ([filename, status]) => ({
        sha: (after.get(filename) ?? before.get(filename))!.sha,
        filename,
        status,
        additions: 0,
        deletions: 0,
        changes: 0,
        blob_url: `${this.baseUrl}/${repo.fullName}/blob/${head}/${filename}`,
        raw_url: `${this.baseUrl}/${repo.fullName}/raw/${head}/${filename}`,
        contents_url: `${this.baseUrl}/repos/${repo.fullName}/contents/${filename}?ref=${head}`,
      }));
    });

    // ---- issues, comments, reactions ----
    this.on("POST", new RegExp(`^${R}/issues$`), async (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "issues", "write");
      const body = await this.json(ctx.request, S.CreateIssueBody);
      const issue = this.store.openIssue(repo, this.actor(ctx), body.title, body.body ?? null);
      this.send(ctx.response, 201, this.render.issue(repo, issue));
    });
    // Issues and pull requests together (a pull request carries `pull_request`), newest first, as GitHub lists them.
    this.on("GET", new RegExp(`^${R}/issues$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "issues");
      const state = ctx.url.searchParams.get("state") ?? "open";
      if (!["open", "closed", "all"].includes(state)) throw new GitHubHttpError(422, `state must be open, closed or all`);
      const creator = ctx.url.searchParams.get("creator");
      const issues = repo.issues.filter((i) => (state === "all" || i.state === state) && (!creator || i.user.login.toLowerCase() === creator.toLowerCase())).sort((a, b) => b.number - a.number);
      this.sendPage(ctx, issues, (i) => this.render.issue(repo, i));
    });
    this.on("GET", new RegExp(`^${R}/issues/(\\d+)$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "issues");
      this.send(ctx.response, 200, this.render.issue(repo, this.issue(repo, ctx.params[2]!)));
    });
    this.on("PATCH", new RegExp(`^${R}/issues/(\\d+)$`), async (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "issues", "write");
      const issue = this.issue(repo, ctx.params[2]!);
      const actor = this.actor(ctx);
      if (ctx.caller.kind === "user" && issue.user.id !== actor.id && !atLeast(this.store.userPermission(repo, actor), "triage")) throw new GitHubHttpError(403, "Must have triage access to edit others' issues");
      const body = await this.json(ctx.request, S.UpdateIssueBody);
      this.store.editIssue(repo, issue, body, actor);
      this.send(ctx.response, 200, this.render.issue(repo, issue));
    });
    this.on("GET", new RegExp(`^${R}/issues/(\\d+)/comments$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "issues");
      const issue = this.issue(repo, ctx.params[2]!);
      const since = ctx.url.searchParams.get("since");
      const comments = repo.comments.filter((c) => c.issueNumber === issue.number && (!since || c.updatedAt >= since));
      this.sendPage(ctx, comments, (c) => this.render.comment(repo, c));
    });
    this.on("POST", new RegExp(`^${R}/issues/(\\d+)/comments$`), async (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "issues", "write");
      const issue = this.issue(repo, ctx.params[2]!);
      const body = await this.json(ctx.request, S.CommentBody);
      const comment = this.store.comment(repo, issue, this.actor(ctx), body.body);
      this.send(ctx.response, 201, this.render.comment(repo, comment), { Location: `${this.baseUrl}/repos/${repo.fullName}/issues/comments/${comment.id}` });
    });
    this.on("GET", new RegExp(`^${R}/issues/comments/(\\d+)$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "issues");
      this.send(ctx.response, 200, this.render.comment(repo, this.comment(repo, ctx.params[2]!)));
    });
    this.on("PATCH", new RegExp(`^${R}/issues/comments/(\\d+)$`), async (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "issues", "write");
      const comment = this.comment(repo, ctx.params[2]!);
      const actor = this.actor(ctx);
      if (comment.user.id !== actor.id && !(ctx.caller.kind === "user" && atLeast(this.store.userPermission(repo, actor), "write"))) {
        throw new GitHubHttpError(403, "Only the comment's author or a collaborator with write access may edit it");
      }
      const body = await this.json(ctx.request, S.CommentBody);
      this.store.editComment(repo, comment, body.body, actor);
      this.send(ctx.response, 200, this.render.comment(repo, comment));
    });
    this.on("POST", new RegExp(`^${R}/issues/comments/(\\d+)/reactions$`), async (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "issues", "write");
      const comment = this.comment(repo, ctx.params[2]!);
      const body = await this.json(ctx.request, S.ReactionBody);
      const actor = this.actor(ctx);
      // One reaction of a kind per user: asking again answers the existing one with 200.
      const existing = comment.reactions.find((r) => r.user.id === actor.id && r.content === body.content);
      const reaction = existing ?? { id: this.store.id(), content: body.content, user: actor, createdAt: new Date().toISOString() };
      if (!existing) comment.reactions.push(reaction);
      this.send(ctx.response, existing ? 200 : 201, { id: reaction.id, node_id: Buffer.from(`Reaction:${reaction.id}`).toString("base64"), user: this.render.account(reaction.user), content: reaction.content, created_at: reaction.createdAt });
    });
    this.on("GET", new RegExp(`^${R}/issues/comments/(\\d+)/reactions$`), (ctx) => {
      const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "issues");
      const comment = this.comment(repo, ctx.params[2]!);
      const content = ctx.url.searchParams.get("content");
      this.sendPage(ctx, comment.reactions.filter((r) => !content || r.content === content), (r) => ({ id: r.id, user: this.render.account(r.user), content: r.content, created_at: r.createdAt }));
    });

    // ---- LFS ----
    this.on("POST", /^\/([^/]+)\/([^/]+)\.git\/info\/lfs\/objects\/batch$/, (ctx) => this.lfsBatch(ctx));
    this.on("GET", /^\/_lfs\/(\d+)\/([0-9a-f]{64})$/, (ctx) => this.lfsDownload(ctx));
    this.on("PUT", /^\/_lfs\/(\d+)\/([0-9a-f]{64})$/, (ctx) => this.lfsUpload(ctx));
    this.on("POST", /^\/_lfs\/(\d+)\/([0-9a-f]{64})\/verify$/, (ctx) => this.lfsVerify(ctx));
  }

  private comment(repo: Repo, id: string) {
    const comment = repo.comments.find((c) => c.id === Number(id));
    if (!comment) throw notFound();
    return comment;
  }

  /** A base64 file of maxFileBytes in a JSON body, and room for the rest of the body. */
  private maxGitBody(): number {
    return Math.ceil((this.maxFileBytes * 4) / 3) + 64 * 1024;
  }

  private tooLarge(): GitHubHttpError {
    return new GitHubHttpError(403, `This API returns blobs up to ${this.maxFileBytes} bytes in size. The requested blob is too large to fetch via the API`, [{ resource: "Blob", field: "data", code: "too_large" }]);
  }

  private checkFileSize(data: Buffer): Buffer {
    if (data.byteLength > this.maxFileBytes) {
      throw new GitHubHttpError(422, `File is ${data.byteLength} bytes; GitHub refuses files over ${this.maxFileBytes} bytes: store it with Git LFS`, [{ resource: "Blob", field: "content", code: "too_large" }]);
    }
    return data;
  }

  private contents(ctx: Ctx): void {
    const repo = this.repo(ctx, ctx.params[0]!, ctx.params[1]!, "contents");
    const path = (ctx.params[2] ?? "").replace(/\/$/, "");
    const ref = ctx.url.searchParams.get("ref") ?? repo.defaultBranch;
    const commitSha = this.resolve(repo, ref);
    if (!commitSha) throw new GitHubHttpError(404, `No commit found for the ref ${ref}`);
    const entry = repo.git.lookup(repo.git.commits.get(commitSha)!.tree, path);
    if (!entry) throw notFound();
    const api = `${this.baseUrl}/repos/${repo.fullName}`;
    const describe = (full: string, e: { type: "blob" | "tree"; sha: string }) => {
      const self = `${api}/contents/${full}?ref=${encodeURIComponent(ref)}`;
      const git = `${api}/git/${e.type === "blob" ? "blobs" : "trees"}/${e.sha}`;
      const html = `${this.baseUrl}/${repo.fullName}/${e.type === "blob" ? "blob" : "tree"}/${ref}/${full}`;
      return {
        type: e.type === "blob" ? "file" : "dir",
        size: e.type === "blob" ? (repo.git.blobs.get(e.sha)?.byteLength ?? 0) : 0,
        name: full.slice(full.lastIndexOf("/") + 1),
        path: full,
        sha: e.sha,
        url: self,
        git_url: git,
        html_url: html,
        download_url: e.type === "blob" ? `${this.baseUrl}/${repo.fullName}/raw/${ref}/${full}` : null,
        _links: { self, git, html },
      };
    };
    if (entry.type === "tree") {
      const listing = repo.git.trees.get(entry.sha) ?? [];
      this.send(ctx.response, 200, listing.map((e) => describe(path ? `${path}/${e.path}` : e.path, e)));
      return;
    }
    const data = repo.git.blobs.get(entry.sha)!;
    if (data.byteLength > this.maxFileBytes) throw this.tooLarge();
    const accept = String(ctx.request.headers.accept ?? "");
    if (/application\/vnd\.github(\.v3)?\.raw/.test(accept)) {
      ctx.response.writeHead(200, { "Content-Type": "application/vnd.github.raw", "Content-Length": String(data.byteLength), ETag: `"${entry.sha}"` }).end(data);
      return;
    }
    // As GitHub: content inline up to 1 MB; above that, encoding "none" and the raw media type to read it.
    const inline = data.byteLength <= INLINE_CONTENT_BYTES;
    this.send(ctx.response, 200, { ...describe(path, entry), content: inline ? this.base64Lines(data) : "", encoding: inline ? "base64" : "none" });
  }

  // ---- LFS ----

  /** A short-lived signature for one object action, sent back by the client in the action's header. */
  private ticket(operation: string, repo: Repo, oid: string, size: number): string {
    return createHmac("sha256", this.ticketKey).update(`${operation}:${repo.id}:${oid}:${size}`).digest("hex");
  }

  private lfsSend(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    response.writeHead(status, { "Content-Type": "application/vnd.git-lfs+json", ...headers }).end(JSON.stringify(body));
  }

  private async lfsBatch(ctx: Ctx): Promise<void> {
    const [owner, name] = [ctx.params[0]!, ctx.params[1]!];
    let repo: Repo;
    let body: z.infer<typeof S.LfsBatchBody>;
    try {
      body = await this.json(ctx.request, S.LfsBatchBody);
      repo = this.repo(ctx, owner, name, "contents", body.operation === "upload" ? "write" : "read");
    } catch (error) {
      // git-lfs asks for credentials on a 401 that names the Basic scheme.
      if (error instanceof GitHubHttpError && ctx.caller.kind === "anonymous" && (error.status === 404 || error.status === 401)) {
        this.lfsSend(ctx.response, 401, { message: "Credentials needed", documentation_url: "https://docs.github.com/articles/about-git-large-file-storage" }, { "LFS-Authenticate": 'Basic realm="GitHub"' });
        return;
      }
      throw error;
    }
    const objects = body.objects.map(({ oid, size }) => {
      const stored = repo.lfs.get(oid);
      const href = `${this.baseUrl}/_lfs/${repo.id}/${oid}`;
      const action = (operation: string) => ({ href, header: { Authorization: `RemoteAuth ${this.ticket(operation, repo, oid, size)}` }, expires_in: 3600 });
      if (body.operation === "download") {
        if (!stored || stored.byteLength !== size) return { oid, size, error: { code: 404, message: "Object does not exist" } };
        return { oid, size, authenticated: true, actions: { download: action("download") } };
      }
      if (size > this.maxLfsBytes) return { oid, size, error: { code: 422, message: `Size must be less than or equal to ${this.maxLfsBytes}` } };
      // An object the server has needs no upload: no actions.
      if (stored) return { oid, size };
      return { oid, size, authenticated: true, actions: { upload: action("upload"), verify: { ...action("verify"), href: `${href}/verify` } } };
    });
    this.lfsSend(ctx.response, 200, { transfer: "basic", objects, hash_algo: "sha256" });
  }

  private lfsObject(ctx: Ctx, operation: string, declaredSize?: number): { repo: Repo; oid: string; size: number } {
    const repo = [...this.store.repos.values()].find((r) => r.id === Number(ctx.params[0]));
    const oid = ctx.params[1]!;
    const size = declaredSize ?? (operation === "download" ? (repo?.lfs.get(oid)?.byteLength ?? -1) : Number(ctx.request.headers["content-length"] ?? "-1"));
    const header = String(ctx.request.headers.authorization ?? "");
    if (!repo || header !== `RemoteAuth ${this.ticket(operation, repo, oid, size)}`) {
      throw new GitHubHttpError(403, `This ${operation} link is not valid for this object and size: ask the batch API for a fresh one`);
    }
    return { repo, oid, size };
  }

  private lfsDownload(ctx: Ctx): void {
    const { repo, oid } = this.lfsObject(ctx, "download");
    const data = repo.lfs.get(oid)!;
    const range = /^bytes=(\d*)-(\d*)$/.exec(String(ctx.request.headers.range ?? ""));
    if (!range || (range[1] === "" && range[2] === "")) {
      ctx.response.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": String(data.byteLength), "Accept-Ranges": "bytes" }).end(data);
      return;
    }
    // bytes=a-b, bytes=a- (to the end) and bytes=-n (the last n).
    let start = range[1] === "" ? data.byteLength - Number(range[2]) : Number(range[1]);
    let end = range[1] === "" || range[2] === "" ? data.byteLength - 1 : Math.min(Number(range[2]), data.byteLength - 1);
    start = Math.max(0, start);
    if (start >= data.byteLength || end < start) {
      ctx.response.writeHead(416, { "Content-Range": `bytes */${data.byteLength}` }).end();
      return;
    }
    end = Math.min(end, data.byteLength - 1);
    ctx.response
      .writeHead(206, { "Content-Type": "application/octet-stream", "Content-Length": String(end - start + 1), "Content-Range": `bytes ${start}-${end}/${data.byteLength}`, "Accept-Ranges": "bytes" })
      .end(data.subarray(start, end + 1));
  }

  /** The verify action: 200 once the object is stored with that size, else 404 (git-lfs then fails the push). */
  private async lfsVerify(ctx: Ctx): Promise<void> {
    const body = await this.json(ctx.request, S.LfsVerifyBody);
    const { repo, oid } = this.lfsObject(ctx, "verify", body.size);
    if (body.oid !== oid) throw new GitHubHttpError(422, `The verify body names ${body.oid}, the link ${oid}`);
    if (repo.lfs.get(oid)?.byteLength !== body.size) {
      this.lfsSend(ctx.response, 404, { message: "Object does not exist", documentation_url: "https://docs.github.com/articles/about-git-large-file-storage" });
      return;
    }
    this.lfsSend(ctx.response, 200, {});
  }

  private async lfsUpload(ctx: Ctx): Promise<void> {
    const { repo, oid, size } = this.lfsObject(ctx, "upload");
    const data = await this.body(ctx.request, size);
    if (data.byteLength !== size || createHash("sha256").update(data).digest("hex") !== oid) {
      throw new GitHubHttpError(422, `Uploaded content does not match oid ${oid} and size ${size}`);
    }
    repo.lfs.set(oid, data);
    ctx.response.writeHead(200).end();
  }
}

