import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { parseCardData } from "../hub/card-data.js";
import { repoPathProblem } from "../storage/repo-files.js";

/** Where a file's bytes are: in memory (small files, uploads) or a file on disk (large seeded weights). */
export type FileContent = { kind: "memory"; data: Buffer } | { kind: "disk"; path: string };

export interface StoredFile {
  readonly path: string;
  readonly size: number;
  /** Git blob id: of the content for regular files, of the LFS pointer for LFS files. */
  readonly oid: string;
  readonly lfs: { readonly oid: string; readonly size: number; readonly pointerSize: number } | null;
  readonly content: FileContent;
}

export interface Commit {
  readonly id: string;
  readonly parent: string | null;
  readonly title: string;
  readonly description: string;
  readonly authorId: string;
  readonly date: string;
  readonly files: ReadonlyMap<string, StoredFile>;
}

export interface DiscussionEvent {
  readonly id: string;
  readonly type: "comment" | "status-change" | "commit";
  readonly authorId: string;
  readonly createdAt: string;
  /** comment: text and edits; status-change: the new status; commit: the commit's id and title. */
  content?: string;
  edits?: number;
  hidden?: boolean;
  status?: DiscussionStatus;
  oid?: string;
  subject?: string;
}

export type DiscussionStatus = "open" | "closed" | "merged" | "draft";

export interface Discussion {
  readonly id: string;
  readonly num: number;
  title: string;
  status: DiscussionStatus;
  readonly isPullRequest: boolean;
  readonly authorId: string;
  readonly createdAt: string;
  readonly events: DiscussionEvent[];
}

export interface Repo {
  readonly id: string;
  readonly name: string;
  readonly type: "model";
  readonly ownerId: string;
  private: boolean;
  /** false, or the gating mode: downloads then need a user in `gatedAccess`. */
  gated: false | "auto" | "manual";
  readonly gatedAccess: Set<string>;
  /** refs/heads/main, refs/pr/1, … -> commit id. */
  readonly refs: Map<string, string>;
  readonly commits: Map<string, Commit>;
  readonly discussions: Discussion[];
  deleted: boolean;
}

export interface User {
  readonly id: string;
  readonly name: string;
  readonly fullname: string;
  readonly token: string;
}

export interface Org {
  readonly id: string;
  readonly name: string;
  readonly memberIds: Set<string>;
}

/** A Mongo-style 24-hex id, as the Hub's payloads carry. */
export const objectId = () => randomBytes(12).toString("hex");
const commitId = () => randomBytes(20).toString("hex");

export function gitBlobOid(content: Buffer): string {
  return createHash("sha1").update(`blob ${content.byteLength}\0`).update(content).digest("hex");
}

export function lfsPointer(sha256: string, size: number): Buffer {
  return Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`);
}

/** The Hub stores these in LFS (its default .gitattributes), and anything of 10 MB or more. */
export function isLfsPath(path: string, size: number): boolean {
  return size >= 10 * 1024 * 1024 || /\.(safetensors|bin|pt|pth|ckpt|onnx|gguf|h5|msgpack|zip|tar|gz|npy|npz|pkl)$/.test(path);
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 8 * 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Builds a stored file from its bytes or a path on disk, with the ids the Hub would give it. */
export async function storedFile(path: string, content: FileContent, knownSha256?: string): Promise<StoredFile> {
  const size = content.kind === "memory" ? content.data.byteLength : (await stat(content.path)).size;
  if (!isLfsPath(path, size)) {
    const data = content.kind === "memory" ? content.data : await readFile(content.path);
    return { path, size, oid: gitBlobOid(data), lfs: null, content: { kind: "memory", data } };
  }
  const sha256 = knownSha256 ?? (content.kind === "memory" ? createHash("sha256").update(content.data).digest("hex") : await sha256OfFile(content.path));
  const pointer = lfsPointer(sha256, size);
  return { path, size, oid: gitBlobOid(pointer), lfs: { oid: sha256, size, pointerSize: pointer.byteLength }, content };
}

/** The card data the Hub shows for a README, or null. */
export function cardDataOf(readme: Buffer | undefined): Record<string, unknown> | null {
  return readme ? parseCardData(readme.toString("utf8")) : null;
}

/** The state of a local Hub: users, organisations and model repos with their history and discussions. */
export class HubStore {
  readonly users = new Map<string, User>();
  readonly orgs = new Map<string, Org>();
  readonly repos = new Map<string, Repo>();

  addUser(name: string, options: { fullname?: string; token?: string; id?: string } = {}): User {
    const user = { id: options.id ?? objectId(), name, fullname: options.fullname ?? name, token: options.token ?? `hf_${randomBytes(16).toString("hex")}` };
    this.users.set(user.id, user);
    return user;
  }

  addOrg(name: string, memberIds: string[] = [], id = objectId()): Org {
    const org = { id, name, memberIds: new Set(memberIds) };
    this.orgs.set(org.id, org);
    return org;
  }

  userByToken(token: string | undefined): User | undefined {
    if (!token) return undefined;
    return [...this.users.values()].find((user) => user.token === token);
  }

  userByName(name: string): User | undefined {
    return [...this.users.values()].find((user) => user.name === name);
  }

  orgByName(name: string): Org | undefined {
    return [...this.orgs.values()].find((org) => org.name === name);
  }

  ownerName(repo: Repo): string {
    return repo.name.slice(0, repo.name.indexOf("/"));
  }

  /** Owner, or member of the owning organisation: may read private repos and write. */
  canWrite(repo: Repo, user: User | undefined): boolean {
    if (!user) return false;
    if (repo.ownerId === user.id) return true;
    return this.orgs.get(repo.ownerId)?.memberIds.has(user.id) ?? false;
  }

  createRepo(name: string, options: { private?: boolean; gated?: false | "auto" | "manual"; id?: string } = {}): Repo {
    const owner = this.orgByName(name.split("/")[0]!) ?? this.userByName(name.split("/")[0]!);
    if (!owner) throw new Error(`no user or organisation "${name.split("/")[0]}" on this local Hub`);
    if (this.repos.has(name)) throw new Error(`repo ${name} exists`);
    const repo: Repo = {
      id: options.id ?? objectId(),
      name,
      type: "model",
      ownerId: owner.id,
      private: options.private ?? false,
      gated: options.gated ?? false,
      gatedAccess: new Set(),
      refs: new Map(),
      commits: new Map(),
      discussions: [],
      deleted: false,
    };
    // Like the Hub, a new repo starts with one commit holding .gitattributes.
    const initial: Commit = {
      id: commitId(),
      parent: null,
      title: "initial commit",
      description: "",
      authorId: owner.id,
      date: new Date().toISOString(),
      files: new Map(),
    };
    repo.commits.set(initial.id, initial);
    repo.refs.set("refs/heads/main", initial.id);
    this.repos.set(name, repo);
    return repo;
  }

  /** Resolves a revision as the Hub does: a branch, `refs/...`, `HEAD`, or a full or short commit id. */
  resolveRevision(repo: Repo, revision: string): Commit | undefined {
    const ref = revision === "HEAD" ? "refs/heads/main" : revision.startsWith("refs/") ? revision : `refs/heads/${revision}`;
    const id = repo.refs.get(ref);
    if (id) return repo.commits.get(id);
    if (/^[0-9a-f]{7,40}$/.test(revision)) return [...repo.commits.values()].find((commit) => commit.id.startsWith(revision));
    return undefined;
  }

  /** The ref names this repo has, longest first, to split `/tree/{rev}/{path}` URLs where rev has slashes. */
  refNames(repo: Repo): string[] {
    return [...repo.refs.keys()].flatMap((ref) => (ref.startsWith("refs/heads/") ? [ref.slice(11), ref] : [ref])).sort((a, b) => b.length - a.length);
  }

  /** Adds a commit on `ref` with `changes` (path -> file, or null to delete). */
  commit(repo: Repo, ref: string, changes: Map<string, StoredFile | null>, meta: { title: string; description?: string; authorId: string }): Commit {
    const parentId = repo.refs.get(ref);
    const parent = parentId ? repo.commits.get(parentId) : undefined;
    const files = new Map(parent?.files ?? []);
    for (const path of changes.keys()) {
      // As on the Hub, a repo never holds a path that leaves it (`..`, `.`, empty segments, a leading /, a backslash).
      const problem = repoPathProblem(path);
      if (problem) throw new Error(`invalid path ${JSON.stringify(path)} in a commit to ${repo.name}: ${problem}`);
    }
    for (const [path, file] of changes) {
      if (file) files.set(path, file);
      else files.delete(path);
    }
    const commit: Commit = {
      id: commitId(),
      parent: parent?.id ?? null,
      title: meta.title,
      description: meta.description ?? "",
      authorId: meta.authorId,
      date: new Date().toISOString(),
      files,
    };
    repo.commits.set(commit.id, commit);
    repo.refs.set(ref, commit.id);
    return commit;
  }

  nextDiscussionNum(repo: Repo): number {
    return repo.discussions.length + 1;
  }
}
