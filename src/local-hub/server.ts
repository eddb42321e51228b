import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { cardDataOf, gitBlobOid, HubStore, isLfsPath, objectId, storedFile, type Commit, type Discussion, type DiscussionEvent, type Repo, type StoredFile, type User } from "./store.js";
import { cardBaseModels } from "../hub/card-data.js";
import { repoPathProblem } from "../storage/repo-files.js";
import { WebhookDispatcher } from "./webhooks.js";

/** A handled request that ends with an HTTP error, in the Hub's format: JSON `{error}` plus `X-Error-Code`. */
class HubHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

const PreuploadBody = z.object({ files: z.array(z.object({ path: z.string(), size: z.number().int().nonnegative(), sample: z.string().optional() })) });
const LfsBatchBody = z.object({ operation: z.literal("upload"), objects: z.array(z.object({ oid: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() })) });
const CommitLine = z.discriminatedUnion("key", [
  z.object({ key: z.literal("header"), value: z.object({ summary: z.string().min(1), description: z.string().optional(), parentCommit: z.string().optional() }) }),
  z.object({ key: z.literal("file"), value: z.object({ path: z.string().min(1), content: z.string(), encoding: z.literal("base64") }) }),
  z.object({ key: z.literal("lfsFile"), value: z.object({ path: z.string().min(1), algo: z.literal("sha256"), oid: z.string(), size: z.number().int().optional() }) }),
  z.object({ key: z.literal("deletedFile"), value: z.object({ path: z.string().min(1) }) }),
  z.object({ key: z.literal("deletedFolder"), value: z.object({ path: z.string().min(1) }) }),
]);
const CreateDiscussionBody = z.object({ title: z.string().min(1), description: z.string().default(""), pullRequest: z.boolean().default(false) });
const CommentBody = z.object({ comment: z.string().min(1) });
const EditCommentBody = z.object({ content: z.string().min(1) });
const StatusBody = z.object({ status: z.enum(["open", "closed"]), comment: z.string().optional() });

export interface LocalHubOptions {
  readonly store?: HubStore;
  readonly port?: number;
}

/** Test hooks: observe or interrupt the Hub at precise moments (e.g. kill a client right after a commit). */
export interface LocalHubHooks {
  /** Every request, before it is handled. */
  onRequest?: (method: string, path: string) => void | Promise<void>;
  /** A commit is applied and its webhooks queued, but the client has not had the answer yet. */
  afterCommit?: (repo: string, ref: string, commitId: string) => void | Promise<void>;
}

/** Bytes of file content served, by repo and path: what tests compare with what the client says it read. */
export type ServedBytes = Map<string, Map<string, number>>;

/**
 * A local stand-in for the Hugging Face Hub, for tests and the offline demo. It implements what this project
 * and @huggingface/hub call — model info, tree, resolve with ranges, whoami, organisation members, preupload,
 * LFS batch with basic transfer, NDJSON commits (also to and as pull requests, with 412 on a stale parent),
 * discussions and comments — and sends version-3 webhooks for the changes it makes.
 */
export class LocalHub {
  readonly store: HubStore;
  readonly webhooks: WebhookDispatcher;
  readonly served: ServedBytes = new Map();
  /** Every request, in order: method and path. */
  readonly requests: Array<{ method: string; path: string }> = [];
  readonly hooks: LocalHubHooks = {};
  private readonly uploads = new Map<string, Buffer>();
  private readonly uploadTicket = randomBytes(16).toString("hex");
  private server: Server | null = null;
  private baseUrl = "";

  constructor(options: LocalHubOptions = {}) {
    this.store = options.store ?? new HubStore();
    this.webhooks = new WebhookDispatcher(this.store, () => this.baseUrl);
  }

  get url(): string {
    return this.baseUrl;
  }

  async start(port = 0): Promise<this> {
    this.server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        const status = error instanceof HubHttpError ? error.status : 500;
        const message = error instanceof Error ? error.message : String(error);
        if (!response.headersSent) {
          const headers: Record<string, string> = error instanceof HubHttpError && error.code ? { "X-Error-Code": error.code } : {};
          if (request.method === "HEAD") {
            // A JSON content type on an empty HEAD body makes clients try to parse it.
            response.writeHead(status, { ...headers, "X-Error-Message": message }).end();
          } else {
            response.writeHead(status, { ...headers, "Content-Type": "application/json" }).end(JSON.stringify({ error: message }));
          }
        } else {
          response.destroy();
        }
      });
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

  /** Content bytes served for a repo, optionally only for paths that `include` accepts. */
  bytesServed(repo: string, include: (path: string) => boolean = () => true): number {
    let total = 0;
    for (const [path, bytes] of this.served.get(repo) ?? []) if (include(path)) total += bytes;
    return total;
  }

  resetCounters(): void {
    this.served.clear();
    this.requests.length = 0;
  }

  // ---- request plumbing ----

  private user(request: IncomingMessage): User | undefined {
    const header = request.headers.authorization;
    const token = header?.startsWith("Bearer ") ? header.slice(7) : undefined;
    return this.store.userByToken(token);
  }

  private async body(request: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  private async json<T>(request: IncomingMessage, schema: z.ZodType<T>): Promise<T> {
    let value: unknown;
    try {
      value = JSON.parse((await this.body(request)).toString("utf8"));
    } catch {
      throw new HubHttpError(400, "Request body is not JSON");
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw new HubHttpError(400, `Invalid request body: ${parsed.error.issues[0]?.path.join(".")} ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }

  private send(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    response.writeHead(status, { "Content-Type": "application/json", ...headers }).end(JSON.stringify(body));
  }

  /** A repo the user may see; private or missing repos are indistinguishable, as on the Hub. */
  private repo(name: string, user: User | undefined): Repo {
    const repo = this.store.repos.get(name);
    if (!repo || repo.deleted || (repo.private && !this.store.canWrite(repo, user))) {
      throw new HubHttpError(user ? 404 : 401, "Repository not found", "RepoNotFound");
    }
    return repo;
  }

  private revision(repo: Repo, revision: string): Commit {
    const commit = this.store.resolveRevision(repo, revision);
    if (!commit) throw new HubHttpError(404, `Invalid rev id: ${revision}`, "RevisionNotFound");
    return commit;
  }

  private checkGate(repo: Repo, user: User | undefined): void {
    if (!repo.gated || this.store.canWrite(repo, user) || (user && repo.gatedAccess.has(user.id))) return;
    if (!user) throw new HubHttpError(401, `Access to model ${repo.name} is restricted. You must have access to it and be authenticated to access it. Please log in.`, "GatedRepo");
    throw new HubHttpError(403, `Access to model ${repo.name} is restricted and you are not in the authorized list. Visit ${this.baseUrl}/${repo.name} to ask for access.`, "GatedRepo");
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://localhost");
    const method = request.method ?? "GET";
    this.requests.push({ method, path: url.pathname + url.search });
    await this.hooks.onRequest?.(method, url.pathname);
    const segments = url.pathname.split("/").slice(1);
    const decoded = segments.map((segment) => decodeURIComponent(segment));
    const user = this.user(request);

    if (method === "GET" && url.pathname === "/api/whoami-v2") return this.whoami(response, user);
    if (method === "GET" && decoded[0] === "api" && decoded[1] === "organizations" && decoded[3] === "members" && decoded.length === 4) {
      return this.members(response, decoded[2]!);
    }
    if (method === "PUT" && decoded[0] === "lfs-upload") return this.lfsUpload(request, response, decoded[1]!, url);
    if (method === "POST" && decoded.length === 6 && decoded[1]!.endsWith(".git") && url.pathname.endsWith("/info/lfs/objects/batch")) {
      return this.lfsBatch(request, response, `${decoded[0]}/${decoded[1]!.slice(0, -4)}`, user);
    }
    if (method === "GET" && decoded[0] === "api" && decoded[1] === "models" && decoded.length === 2) return this.listModels(response, url, user);
    if (decoded[0] === "api" && decoded[1] === "models" && decoded.length >= 4) {
      const name = `${decoded[2]}/${decoded[3]}`;
      const rest = decoded.slice(4);
      const rawRest = segments.slice(4);
      return this.modelApi(request, response, method, name, rest, rawRest, url, user);
    }
    if ((method === "GET" || method === "HEAD") && decoded.length >= 5 && (decoded[2] === "resolve" || decoded[2] === "raw")) {
      return this.resolve(request, response, `${decoded[0]}/${decoded[1]}`, decoded[3]!, decoded.slice(4).join("/"), user);
    }
    throw new HubHttpError(404, `No route for ${method} ${url.pathname} on this local Hub`);
  }

  private async modelApi(
    request: IncomingMessage,
    response: ServerResponse,
    method: string,
    name: string,
    rest: string[],
    rawRest: string[],
    url: URL,
    user: User | undefined,
  ): Promise<void> {
    if (method === "GET" && rest.length === 0) return this.modelInfo(response, this.repo(name, user), "HEAD");
    if (method === "GET" && rest[0] === "revision" && rest.length === 2) return this.modelInfo(response, this.repo(name, user), rest[1]!);
    if (method === "GET" && rest[0] === "tree") return this.tree(response, this.repo(name, user), rawRest.slice(1).map(decodeURIComponent).join("/"), url);
    if (method === "POST" && rest[0] === "preupload" && rest.length === 2) return this.preupload(request, response, this.repo(name, user), user);
    if (method === "POST" && rest[0] === "commit" && rest.length === 2) {
      return this.commit(request, response, this.repo(name, user), rest[1]!, url.searchParams.get("create_pr") === "1", user);
    }
    if (rest[0] === "discussions") return this.discussions(request, response, method, this.repo(name, user), rest.slice(1), url, user);
    throw new HubHttpError(404, `No route for ${method} /api/models/${name}/${rest.join("/")} on this local Hub`);
  }

  // ---- identity ----

  private whoami(response: ServerResponse, user: User | undefined): void {
    if (!user) throw new HubHttpError(401, "Invalid credentials in Authorization header");
    const orgs = [...this.store.orgs.values()].filter((org) => org.memberIds.has(user.id));
    this.send(response, 200, {
      type: "user",
      id: user.id,
      name: user.name,
      fullname: user.fullname,
      isPro: false,
      orgs: orgs.map((org) => ({ type: "org", id: org.id, name: org.name, fullname: org.name, roleInOrg: "write" })),
      auth: { type: "access_token", accessToken: { displayName: "local-hub", role: "write", createdAt: new Date(0).toISOString() } },
    });
  }

  private members(response: ServerResponse, orgName: string): void {
    const org = this.store.orgByName(orgName);
    if (!org) throw new HubHttpError(404, `Organization ${orgName} not found`);
    const members = [...org.memberIds].map((id) => this.store.users.get(id)).filter((user): user is User => Boolean(user));
    this.send(response, 200, members.map((user) => ({ _id: user.id, user: user.name, fullname: user.fullname, type: "user", isPro: false, avatarUrl: "" })));
  }

  // ---- reading ----

  private listModels(response: ServerResponse, url: URL, user: User | undefined): void {
    const author = url.searchParams.get("author");
    const visible = [...this.store.repos.values()].filter(
      (repo) => !repo.deleted && (!repo.private || this.store.canWrite(repo, user)) && (!author || this.store.ownerName(repo) === author),
    );
    this.send(
      response,
      200,
      visible.map((repo) => {
        const head = repo.commits.get(repo.refs.get("refs/heads/main")!)!;
        return { _id: repo.id, id: repo.name, private: repo.private, gated: repo.gated, downloads: 0, likes: 0, lastModified: head.date, sha: head.id };
      }),
    );
  }

  private modelInfo(response: ServerResponse, repo: Repo, revision: string): void {
    const commit = this.revision(repo, revision);
    const fileText = (path: string) => {
      const file = commit.files.get(path);
      return file?.content.kind === "memory" ? file.content.data : undefined;
    };
    const cardData = cardDataOf(fileText("README.md"));
    let config: Record<string, unknown> | undefined;
    try {
      const raw = fileText("config.json");
      if (raw) {
        const parsed = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
        config = { architectures: parsed.architectures, model_type: parsed.model_type, ...(parsed.quantization_config ? { quantization_config: parsed.quantization_config } : {}) };
      }
    } catch {
      config = undefined;
    }
    const isAdapter = [...commit.files.keys()].some((path) => path.endsWith("adapter_config.json"));
    const relation = (typeof cardData?.base_model_relation === "string" ? cardData.base_model_relation : null) ?? (isAdapter ? "adapter" : "finetune");
    const bases = cardBaseModels(cardData);
    const cardTags = Array.isArray(cardData?.tags) ? (cardData.tags as unknown[]).filter((tag): tag is string => typeof tag === "string") : [];
    const tags = [...cardTags, ...bases.flatMap((id) => [`base_model:${id}`, `base_model:${relation}:${id}`])];
    this.send(response, 200, {
      _id: repo.id,
      id: repo.name,
      modelId: repo.name,
      author: this.store.ownerName(repo),
      sha: commit.id,
      lastModified: commit.date,
      createdAt: [...repo.commits.values()][0]?.date,
      private: repo.private,
      gated: repo.gated,
      disabled: false,
      downloads: 0,
      likes: 0,
      tags,
      library_name: typeof cardData?.library_name === "string" ? cardData.library_name : isAdapter ? "peft" : config ? "transformers" : undefined,
      ...(cardData ? { cardData } : {}),
      ...(config ? { config } : {}),
      siblings: [...commit.files.keys()].sort().map((rfilename) => ({ rfilename })),
    });
  }

  private tree(response: ServerResponse, repo: Repo, revisionAndPath: string, url: URL): void {
    // The client sends the revision unencoded, so `refs/pr/3/sub/dir` must be split at a known ref.
    const revision =
      this.store.refNames(repo).find((ref) => revisionAndPath === ref || revisionAndPath.startsWith(`${ref}/`)) ?? revisionAndPath.split("/")[0]!;
    const path = revisionAndPath.slice(revision.length + 1);
    const commit = this.revision(repo, revision);
    const recursive = url.searchParams.get("recursive") === "true";
    const prefix = path ? `${path}/` : "";
    const entries: unknown[] = [];
    const directories = new Set<string>();
    for (const file of [...commit.files.values()].sort((a, b) => (a.path < b.path ? -1 : 1))) {
      if (!file.path.startsWith(prefix)) continue;
      const relative = file.path.slice(prefix.length);
      if (!recursive && relative.includes("/")) {
        directories.add(prefix + relative.slice(0, relative.indexOf("/")));
        continue;
      }
      if (recursive) {
        const parts = relative.split("/");
        for (let i = 1; i < parts.length; i++) directories.add(prefix + parts.slice(0, i).join("/"));
      }
      entries.push({ type: "file", oid: file.oid, size: file.size, path: file.path, ...(file.lfs ? { lfs: file.lfs } : {}) });
    }
    if (path && entries.length === 0 && directories.size === 0) throw new HubHttpError(404, `${path} does not exist on ${revision}`, "EntryNotFound");
    const folders = [...directories].sort().map((dir) => ({ type: "directory", oid: gitBlobOid(Buffer.from(dir)), size: 0, path: dir }));
    this.send(response, 200, [...folders, ...entries]);
  }

  private resolve(request: IncomingMessage, response: ServerResponse, name: string, revision: string, path: string, user: User | undefined): void {
    const repo = this.repo(name, user);
    const commit = this.revision(repo, revision);
    const file = commit.files.get(path);
    if (!file) throw new HubHttpError(404, `Entry not found: ${path}`, "EntryNotFound");
    this.checkGate(repo, user);
    const etag = `"${file.lfs?.oid ?? file.oid}"`;
    const headers: Record<string, string> = {
      ETag: etag,
      "X-Repo-Commit": commit.id,
      "Accept-Ranges": "bytes",
      "Content-Type": "application/octet-stream",
      ...(file.lfs ? { "X-Linked-Etag": etag, "X-Linked-Size": String(file.size) } : {}),
    };
    let start = 0;
    let end = file.size - 1;
    let status = 200;
    const range = request.headers.range;
    if (range) {
      const match = /^bytes=(\d*)-(\d*)$/.exec(range);
      if (!match || (match[1] === "" && match[2] === "")) throw new HubHttpError(416, `Invalid range ${range}`);
      if (match[1] === "") {
        start = Math.max(0, file.size - Number(match[2]));
      } else {
        start = Number(match[1]);
        if (match[2] !== "") end = Math.min(end, Number(match[2]));
      }
      if (file.size === 0) {
        // An empty file has no satisfiable range; answer as the Hub does, with its size.
        response.writeHead(200, { ...headers, "Content-Length": "0", "Content-Range": "bytes */0" }).end();
        return;
      }
      if (start >= file.size || start > end) {
        response.writeHead(416, { ...headers, "Content-Range": `bytes */${file.size}` }).end();
        return;
      }
      status = 206;
      headers["Content-Range"] = `bytes ${start}-${end}/${file.size}`;
    }
    const length = file.size === 0 ? 0 : end - start + 1;
    response.writeHead(status, { ...headers, "Content-Length": String(length) });
    if (request.method === "HEAD" || length === 0) {
      response.end();
      return;
    }
    const counts = this.served.get(repo.name) ?? new Map<string, number>();
    this.served.set(repo.name, counts);
    counts.set(path, (counts.get(path) ?? 0) + length);
    if (file.content.kind === "memory") {
      response.end(file.content.data.subarray(start, end + 1));
    } else {
      createReadStream(file.content.path, { start, end }).pipe(response);
    }
  }

  // ---- writing ----

  private async preupload(request: IncomingMessage, response: ServerResponse, repo: Repo, user: User | undefined): Promise<void> {
    if (!user) throw new HubHttpError(401, "Invalid credentials in Authorization header");
    const body = await this.json(request, PreuploadBody);
    this.send(response, 200, {
      files: body.files.map((file) => ({ path: file.path, uploadMode: isLfsPath(file.path, file.size) ? "lfs" : "regular", shouldIgnore: false })),
      commitOid: repo.refs.get("refs/heads/main"),
    });
  }

  private async lfsBatch(request: IncomingMessage, response: ServerResponse, name: string, user: User | undefined): Promise<void> {
    if (!user) throw new HubHttpError(401, "Invalid credentials in Authorization header");
    this.repo(name, user);
    const body = await this.json(request, LfsBatchBody);
    const known = (oid: string) => this.uploads.has(oid) || this.findLfs(oid) !== undefined;
    const objects = body.objects.map(({ oid, size }) => ({
      oid,
      size,
      authenticated: true,
      ...(known(oid) ? {} : { actions: { upload: { href: `${this.baseUrl}/lfs-upload/${oid}?size=${size}&ticket=${this.uploadTicket}`, expires_in: 3600 } } }),
    }));
    response.writeHead(200, { "Content-Type": "application/vnd.git-lfs+json" }).end(JSON.stringify({ transfer: "basic", objects }));
  }

  private findLfs(oid: string): StoredFile | undefined {
    for (const repo of this.store.repos.values()) {
      for (const commit of repo.commits.values()) for (const file of commit.files.values()) if (file.lfs?.oid === oid) return file;
    }
    return undefined;
  }

  private async lfsUpload(request: IncomingMessage, response: ServerResponse, oid: string, url: URL): Promise<void> {
    // Pre-signed: the ticket in the URL is the authorisation, as with the Hub's S3 URLs.
    if (url.searchParams.get("ticket") !== this.uploadTicket) throw new HubHttpError(403, "Invalid upload ticket");
    const data = await this.body(request);
    if (createHash("sha256").update(data).digest("hex") !== oid || String(data.byteLength) !== url.searchParams.get("size")) {
      throw new HubHttpError(400, "Uploaded content does not match its oid and size");
    }
    this.uploads.set(oid, data);
    response.writeHead(200).end();
  }

  private async commit(request: IncomingMessage, response: ServerResponse, repo: Repo, revision: string, createPr: boolean, user: User | undefined): Promise<void> {
    if (!user) throw new HubHttpError(401, "Invalid credentials in Authorization header");
    const text = (await this.body(request)).toString("utf8");
    const lines: Array<z.infer<typeof CommitLine>> = [];
    for (const line of text.split("\n").filter((l) => l.trim() !== "")) {
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch {
        throw new HubHttpError(400, "Commit body is not NDJSON");
      }
      const parsed = CommitLine.safeParse(json);
      if (!parsed.success) throw new HubHttpError(400, `Invalid commit line: ${parsed.error.issues[0]?.message}`);
      lines.push(parsed.data);
    }
    const header = lines.find((line) => line.key === "header");
    if (!header || header.key !== "header") throw new HubHttpError(400, "Commit has no header line");

    const baseRef = revision.startsWith("refs/") ? revision : `refs/heads/${revision}`;
    if (!repo.refs.has(baseRef)) throw new HubHttpError(404, `Invalid rev id: ${revision}: commits go to a branch or a pull request ref`, "RevisionNotFound");
    const head = this.revision(repo, revision);
    // A pull request is opened from the given parent; a commit to a branch must be based on its head.
    const base = createPr && header.value.parentCommit ? this.revision(repo, header.value.parentCommit) : head;
    const prRef = /^refs\/pr\/(\d+)$/.exec(baseRef);
    const pr = prRef ? repo.discussions.find((d) => d.num === Number(prRef[1]) && d.isPullRequest) : undefined;
    const mayWrite = this.store.canWrite(repo, user) || (pr !== undefined && pr.authorId === user.id);
    if (!createPr && !mayWrite) throw new HubHttpError(403, `You don't have the rights to commit to ${revision} of ${repo.name}; open a pull request instead`);
    if (!createPr && header.value.parentCommit && header.value.parentCommit !== head.id) {
      throw new HubHttpError(412, "The branch was updated since you opened this page. Please refresh and try again.");
    }

    for (const line of lines) {
      if (line.key === "header") continue;
      // The Hub answers 400 to a path that would leave the repo; checked before anything is stored.
      const problem = repoPathProblem(line.key === "deletedFolder" ? line.value.path.replace(/\/$/, "") : line.value.path);
      if (problem) throw new HubHttpError(400, `Invalid path ${JSON.stringify(line.value.path)}: ${problem}`);
    }
    const changes = new Map<string, StoredFile | null>();
    for (const line of lines) {
      if (line.key === "file") {
        changes.set(line.value.path, await storedFile(line.value.path, { kind: "memory", data: Buffer.from(line.value.content, "base64") }));
      } else if (line.key === "lfsFile") {
        const data = this.uploads.get(line.value.oid);
        const existing = data ? undefined : this.findLfs(line.value.oid);
        if (!data && !existing) throw new HubHttpError(422, `LFS object ${line.value.oid} for ${line.value.path} was never uploaded`);
        changes.set(line.value.path, data ? await storedFile(line.value.path, { kind: "memory", data }, line.value.oid) : { ...existing!, path: line.value.path });
      } else if (line.key === "deletedFile") {
        if (!base.files.has(line.value.path)) throw new HubHttpError(404, `${line.value.path} does not exist`, "EntryNotFound");
        changes.set(line.value.path, null);
      } else if (line.key === "deletedFolder") {
        for (const path of base.files.keys()) if (path.startsWith(`${line.value.path.replace(/\/$/, "")}/`)) changes.set(path, null);
      }
    }

    const meta = { title: header.value.summary, description: header.value.description ?? "", authorId: user.id };
    let targetRef = baseRef;
    let discussion: Discussion | undefined = pr;
    if (createPr) {
      const num = this.store.nextDiscussionNum(repo);
      targetRef = `refs/pr/${num}`;
      repo.refs.set(targetRef, base.id);
      discussion = this.newDiscussion(repo, num, header.value.summary, true, user, header.value.description ?? "");
    }
    const oldSha = createPr ? null : (repo.refs.get(targetRef) ?? null);
    const commit = this.store.commit(repo, targetRef, changes, meta);
    if (pr && pr.status === "draft") pr.status = "open";
    if (discussion && !createPr) {
      discussion.events.push({ id: objectId(), type: "commit", authorId: user.id, createdAt: commit.date, oid: commit.id, subject: commit.title });
    }
    this.webhooks.emit(repo, { scope: "repo.content", action: "update", updatedRefs: [{ ref: targetRef, oldSha, newSha: commit.id }] });
    if (createPr && discussion) this.webhooks.emit(repo, { scope: "discussion", action: "create", discussion, comment: discussion.events[0] });
    await this.hooks.afterCommit?.(repo.name, targetRef, commit.id);
    this.send(response, 200, {
      success: true,
      commitOid: commit.id,
      commitUrl: `${this.baseUrl}/${repo.name}/commit/${commit.id}`,
      commitMessage: commit.title,
      hookOutput: "",
      ...(createPr && discussion ? { pullRequestUrl: `${this.baseUrl}/${repo.name}/discussions/${discussion.num}` } : {}),
    });
  }

  // ---- discussions ----

  private newDiscussion(repo: Repo, num: number, title: string, isPullRequest: boolean, author: User, description: string): Discussion {
    const createdAt = new Date().toISOString();
    const discussion: Discussion = {
      id: objectId(),
      num,
      title,
      status: "open",
      isPullRequest,
      authorId: author.id,
      createdAt,
      events: [{ id: objectId(), type: "comment", authorId: author.id, createdAt, content: description, edits: 0, hidden: false }],
    };
    repo.discussions.push(discussion);
    return discussion;
  }

  private authorJson(id: string) {
    const user = this.store.users.get(id);
    const org = this.store.orgs.get(id);
    const name = user?.name ?? org?.name ?? "deleted";
    return { _id: id, name, fullname: user?.fullname ?? name, type: org ? "org" : "user", isPro: false, avatarUrl: "" };
  }

  private eventJson(event: DiscussionEvent) {
    const base = { id: event.id, type: event.type, createdAt: event.createdAt, author: this.authorJson(event.authorId) };
    if (event.type === "comment") {
      return {
        ...base,
        data: {
          edited: (event.edits ?? 0) > 0,
          hidden: event.hidden ?? false,
          numEdits: event.edits ?? 0,
          latest: { raw: event.content ?? "", html: event.content ?? "", updatedAt: event.createdAt, author: this.authorJson(event.authorId) },
        },
      };
    }
    if (event.type === "status-change") return { ...base, data: { status: event.status } };
    return { ...base, data: { oid: event.oid, subject: event.subject } };
  }

  private discussionSummary(repo: Repo, discussion: Discussion) {
    return {
      num: discussion.num,
      title: discussion.title,
      status: discussion.status,
      isPullRequest: discussion.isPullRequest,
      createdAt: discussion.createdAt,
      author: this.authorJson(discussion.authorId),
      repo: { name: repo.name, type: repo.type },
      numComments: discussion.events.filter((event) => event.type === "comment").length,
      pinned: false,
      topReactions: [],
    };
  }

  private async discussions(request: IncomingMessage, response: ServerResponse, method: string, repo: Repo, rest: string[], url: URL, user: User | undefined): Promise<void> {
    if (rest.length === 0 && method === "GET") {
      const page = Number(url.searchParams.get("p") ?? "0");
      const all = [...repo.discussions].reverse();
      const perPage = 50;
      this.send(response, 200, {
        discussions: all.slice(page * perPage, (page + 1) * perPage).map((d) => this.discussionSummary(repo, d)),
        count: all.length,
        start: page * perPage,
        numClosedDiscussions: all.filter((d) => d.status === "closed").length,
      });
      return;
    }
    if (rest.length === 0 && method === "POST") {
      const body = await this.json(request, CreateDiscussionBody);
      if (!user) throw new HubHttpError(401, "Invalid credentials in Authorization header");
      const num = this.store.nextDiscussionNum(repo);
      const discussion = this.newDiscussion(repo, num, body.title, body.pullRequest, user, body.description);
      if (body.pullRequest) {
        discussion.status = "draft";
        repo.refs.set(`refs/pr/${num}`, repo.refs.get("refs/heads/main")!);
      }
      this.webhooks.emit(repo, { scope: "discussion", action: "create", discussion, comment: discussion.events[0] });
      this.send(response, 200, { num, pullRequest: body.pullRequest, url: `${this.baseUrl}/${repo.name}/discussions/${num}` });
      return;
    }
    const discussion = repo.discussions.find((d) => d.num === Number(rest[0]));
    if (!discussion) throw new HubHttpError(404, `Discussion ${rest[0]} not found`);
    if (rest.length === 1 && method === "GET") {
      const ref = `refs/pr/${discussion.num}`;
      this.send(response, 200, {
        _id: discussion.id,
        ...this.discussionSummary(repo, discussion),
        events: discussion.events.map((event) => this.eventJson(event)),
        locked: false,
        ...(discussion.isPullRequest
          ? { filesWithConflicts: [], changes: { base: "refs/heads/main", ...(repo.refs.has(ref) ? { headCommitId: repo.refs.get(ref) } : {}) } }
          : {}),
      });
      return;
    }
    if (!user) throw new HubHttpError(401, "Invalid credentials in Authorization header");
    if (rest[1] === "comment" && rest.length === 2 && method === "POST") {
      const body = await this.json(request, CommentBody);
      const event: DiscussionEvent = { id: objectId(), type: "comment", authorId: user.id, createdAt: new Date().toISOString(), content: body.comment, edits: 0, hidden: false };
      discussion.events.push(event);
      this.webhooks.emit(repo, { scope: "discussion.comment", action: "create", discussion, comment: event });
      this.send(response, 201, { newMessage: this.eventJson(event) });
      return;
    }
    if (rest[1] === "comment" && rest[3] === "edit" && rest.length === 4 && method === "POST") {
      const body = await this.json(request, EditCommentBody);
      const event = discussion.events.find((e) => e.id === rest[2] && e.type === "comment");
      if (!event) throw new HubHttpError(404, `Comment ${rest[2]} not found`);
      if (event.authorId !== user.id) throw new HubHttpError(403, "You can only edit your own comments");
      event.content = body.content;
      event.edits = (event.edits ?? 0) + 1;
      this.webhooks.emit(repo, { scope: "discussion.comment", action: "update", discussion, comment: event });
      this.send(response, 200, { updatedComment: this.eventJson(event) });
      return;
    }
    if (rest[1] === "status" && rest.length === 2 && method === "POST") {
      const body = await this.json(request, StatusBody);
      if (discussion.authorId !== user.id && !this.store.canWrite(repo, user)) throw new HubHttpError(403, "You cannot change the status of this discussion");
      discussion.status = body.status;
      const event: DiscussionEvent = { id: objectId(), type: "status-change", authorId: user.id, createdAt: new Date().toISOString(), status: body.status };
      discussion.events.push(event);
      if (body.comment) discussion.events.push({ id: objectId(), type: "comment", authorId: user.id, createdAt: event.createdAt, content: body.comment, edits: 0, hidden: false });
      this.webhooks.emit(repo, { scope: "discussion", action: "update", discussion });
      this.send(response, 200, { newStatus: this.eventJson(event) });
      return;
    }
    if (rest[1] === "merge" && rest.length === 2 && method === "POST") {
      if (!this.store.canWrite(repo, user)) throw new HubHttpError(403, "Only members of the repo's owner can merge");
      const head = repo.refs.get(`refs/pr/${discussion.num}`);
      if (!discussion.isPullRequest || !head) throw new HubHttpError(400, "Not a pull request");
      const old = repo.refs.get("refs/heads/main") ?? null;
      const prCommit = repo.commits.get(head)!;
      const merged = this.store.commit(repo, "refs/heads/main", new Map(prCommit.files), { title: `Merge pull request #${discussion.num}`, authorId: user.id });
      discussion.status = "merged";
      discussion.events.push({ id: objectId(), type: "status-change", authorId: user.id, createdAt: merged.date, status: "merged" });
      this.webhooks.emit(repo, { scope: "repo.content", action: "update", updatedRefs: [{ ref: "refs/heads/main", oldSha: old, newSha: merged.id }] });
      this.webhooks.emit(repo, { scope: "discussion", action: "update", discussion });
      this.send(response, 200, {});
      return;
    }
    throw new HubHttpError(404, `No route for ${method} discussions/${rest.join("/")} on this local Hub`);
  }
}
