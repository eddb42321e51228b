import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import type { PinnedRepo } from "../forge/forge.js";
import type { ByteSource } from "../storage/byte-source.js";
import { checkTextSize, MAX_TEXT_BYTES, quotePath, repoPathProblem } from "../storage/repo-files.js";
import type { Octokit } from "octokit";
import { GithubCommit, GithubRef, GithubTag } from "./api-schema.js";
import { githubError, githubFetch, MAX_BLOB_BYTES, refPath, repoParams, type GithubAccess } from "./github-access.js";
import { LfsClient, MAX_POINTER_BYTES, parseLfsPointer, type LfsAction, type LfsPointer } from "./lfs.js";

const TreeAnswer = z.looseObject({
  truncated: z.boolean(),
  tree: z
    .array(
      z.looseObject({
        path: z.string().max(4096),
        type: z.string(),
        sha: z.string().regex(/^[0-9a-f]{40}$/),
        size: z.number().int().nonnegative().optional(),
      }),
    )
    .max(100_000),
});

const BlobAnswer = z.looseObject({ encoding: z.literal("base64"), content: z.string(), size: z.number().int().nonnegative() });

interface TreeFile {
  readonly size: number;
  /** The git blob id: it changes exactly with the content (a pointer's changes with its object). */
  readonly sha: string;
}

/** The commit a revision names: a full sha as it is (checked when it is read), `refs/…` and branch names through the git refs API. */
export async function resolveRevision(octokit: Octokit, repo: string, revision: string): Promise<string> {
  if (/^[0-9a-f]{40}$/.test(revision)) return revision;
  const params = repoParams(repo);
  const ref = revision.startsWith("refs/") ? revision.slice("refs/".length) : `heads/${revision}`;
  const { object } = GithubRef.parse((await octokit.request(`GET /repos/{owner}/{repo}/git/ref/${refPath(ref)}`, params)).data);
  // An annotated tag points at a tag object; its commit is one more step.
  if (object.type === "tag") return GithubTag.parse((await octokit.rest.git.getTag({ ...params, tag_sha: object.sha })).data).object.sha;
  return object.sha;
}

/**
 * A GitHub repo pinned to one commit: the tree is listed once, and files are read by blob id, so every read of
 * a job sees the same files whatever is pushed meanwhile. LFS-tracked files are read from the LFS server by
 * range; others come whole through the blob API (it has no ranges) and are kept while their source is open.
 */
export class GithubRepoFiles implements PinnedRepo {
  private readonly sources: ByteSource[] = [];
  private textBytes = 0;
  private lfsClient: LfsClient | null = null;

  private constructor(
    private readonly access: GithubAccess,
    private readonly octokit: Octokit,
    private readonly token: string,
    readonly id: string,
    readonly sha: string,
    private readonly isPrivate: boolean,
    private readonly tree: ReadonlyMap<string, TreeFile>,
  ) {}

  static async open(params: { access: GithubAccess; octokit: Octokit; token: string; repo: string; revision: string; private: boolean }): Promise<GithubRepoFiles> {
    const { access, octokit, repo } = params;
    const sha = await resolveRevision(octokit, repo, params.revision);
    const commit = GithubCommit.parse((await octokit.rest.git.getCommit({ ...repoParams(repo), commit_sha: sha })).data);
    const answer = TreeAnswer.parse((await octokit.rest.git.getTree({ ...repoParams(repo), tree_sha: commit.tree.sha, recursive: "true" })).data);
    const at = `${repo}@${sha.slice(0, 12)}`;
    if (answer.truncated) throw new SafeLoraError(`${at} has more files than GitHub lists in one tree (its listing came back truncated); keep adapters in a smaller repo`, "limit-exceeded");
    const tree = new Map<string, TreeFile>();
    for (const entry of answer.tree) {
      const problem = repoPathProblem(entry.path);
      // GitHub would not store such a path; a listing holding one is not to be trusted at all.
      if (problem) throw new SafeLoraError(`GitHub listed a file ${quotePath(entry.path)} in ${at}, which is not a path inside the repo (${problem}); nothing of it is read`, "unsafe-path");
      if (entry.type === "blob") tree.set(entry.path, { size: entry.size ?? 0, sha: entry.sha });
    }
    return new GithubRepoFiles(access, octokit, params.token, repo, sha, params.private, tree);
  }

  get description(): string {
    return `${this.id}@${this.sha.slice(0, 12)}`;
  }

  get private(): boolean {
    return this.isPrivate;
  }

  get bytesRead(): number {
    return this.sources.reduce((sum, source) => sum + source.bytesRead, this.textBytes);
  }

  paths(): string[] {
    return [...this.tree.keys()];
  }

  async exists(path: string): Promise<boolean> {
    return this.tree.has(path);
  }

  async contentKey(path: string): Promise<string | null> {
    return this.tree.get(path)?.sha ?? null;
  }

  private entry(path: string): TreeFile {
    const entry = this.tree.get(path);
    if (!entry) throw new SafeLoraError(`${this.description} has no file ${path}`, "missing-file");
    return entry;
  }

  private explain(error: unknown): unknown {
    return githubError({ error, repo: this.id, action: null, access: this.access });
  }

  /** A blob's bytes through the API; over 100 MB it cannot be had that way at all. */
  private async blobBytes(path: string, entry: TreeFile): Promise<Uint8Array> {
    const limit = this.access.maxBlobBytes ?? MAX_BLOB_BYTES;
    if (entry.size > limit) {
      throw new SafeLoraError(
        `${this.description}/${path} is ${entry.size} bytes and not in Git LFS; GitHub's API serves no file over ${limit} bytes (100 MB on github.com), so the bot cannot read it. Track it with Git LFS (git lfs track "*.safetensors") and push it again`,
        "limit-exceeded",
      );
    }
    try {
      const blob = BlobAnswer.parse((await this.octokit.rest.git.getBlob({ ...repoParams(this.id), file_sha: entry.sha })).data);
      const bytes = new Uint8Array(Buffer.from(blob.content, "base64"));
      if (bytes.byteLength !== entry.size) throw new SafeLoraError(`${this.description}/${path}: GitHub's blob is ${bytes.byteLength} bytes, its tree says ${entry.size}`, "hub-unavailable");
      return bytes;
    } catch (error) {
      throw this.explain(error);
    }
  }

  /** The LFS pointer a small blob holds, or null (with the bytes read) when it is the file itself. */
  private async pointerOf(path: string, entry: TreeFile): Promise<{ pointer: LfsPointer } | { bytes: Uint8Array }> {
    const bytes = await this.blobBytes(path, entry);
    const pointer = entry.size <= MAX_POINTER_BYTES ? parseLfsPointer(bytes) : null;
    return pointer ? { pointer } : { bytes };
  }

  private lfs(): LfsClient {
    this.lfsClient ??= new LfsClient(this.access, this.id, this.token);
    return this.lfsClient;
  }

  private async lfsSource(description: string, pointer: LfsPointer): Promise<LfsByteSource> {
    const download = () => this.lfs().download(pointer);
    return new LfsByteSource(description, pointer, await download(), download, this.access);
  }

  async readText(path: string, options: { readonly maxBytes?: number } = {}): Promise<string> {
    const maxBytes = options.maxBytes ?? MAX_TEXT_BYTES;
    const entry = this.entry(path);
    checkTextSize(`${this.description}/${path}`, entry.size, maxBytes);
    const found = await this.pointerOf(path, entry);
    let bytes: Uint8Array;
    if ("bytes" in found) bytes = found.bytes;
    else {
      checkTextSize(`${this.description}/${path}`, found.pointer.size, maxBytes);
      const source = await this.lfsSource(`${this.description}/${path}`, found.pointer);
      bytes = await source.read(0, found.pointer.size);
    }
    this.textBytes += bytes.byteLength;
    return new TextDecoder().decode(bytes);
  }

  async openBytes(path: string): Promise<ByteSource> {
    const entry = this.entry(path);
    const found = await this.pointerOf(path, entry);
    const description = `${this.description}/${path}`;
    const source = "bytes" in found ? new BlobByteSource(description, found.bytes) : await this.lfsSource(description, found.pointer);
    this.sources.push(source);
    return source;
  }

  async close(): Promise<void> {
    await Promise.all(this.sources.map((source) => source.close()));
  }
}

function checkRange(description: string, size: number, offset: number, length: number): void {
  if (offset < 0 || length < 0 || offset + length > size) throw new RangeError(`read of ${length} bytes at ${offset} is outside ${description} (${size} bytes)`);
}

/** A blob the API gave whole (at most 100 MB): reads are slices of it. */
class BlobByteSource implements ByteSource {
  bytesRead = 0;

  constructor(
    readonly description: string,
    private bytes: Uint8Array | null,
  ) {}

  get size(): number {
    return this.bytes?.byteLength ?? 0;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (!this.bytes) throw new Error(`${this.description} was read after it was closed`);
    checkRange(this.description, this.bytes.byteLength, offset, length);
    // A fresh buffer keeps byteOffset 0, so typed-array views of the result are always aligned.
    const target = into ? into.subarray(0, length) : new Uint8Array(length);
    target.set(this.bytes.subarray(offset, offset + length));
    this.bytesRead += length;
    return target;
  }

  async close(): Promise<void> {
    this.bytes = null;
  }
}

/**
 * An LFS object read from its download href by HTTP range. A server that ignores ranges (200, not 206) is
 * still read correctly: the body is streamed past the offset, costing the bytes before it.
 */
class LfsByteSource implements ByteSource {
  bytesRead = 0;

  constructor(
    readonly description: string,
    private readonly pointer: LfsPointer,
    private action: LfsAction,
    /** A fresh download action: hrefs expire (an hour on github.com), and a job may read for longer. */
    private readonly renew: () => Promise<LfsAction>,
    private readonly access: Pick<GithubAccess, "fetch">,
  ) {}

  get size(): number {
    return this.pointer.size;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    checkRange(this.description, this.size, offset, length);
    const target = into ? into.subarray(0, length) : new Uint8Array(length);
    if (length === 0) return target;
    let response = await this.fetchRange(offset, length);
    if (response.status === 401 || response.status === 403) {
      await response.arrayBuffer().catch(() => undefined);
      this.action = await this.renew();
      response = await this.fetchRange(offset, length);
    }
    if ((response.status !== 206 && response.status !== 200) || !response.body) {
      await response.arrayBuffer().catch(() => undefined);
      const code = response.status === 404 || response.status === 410 ? "hub-not-found" : response.status === 401 || response.status === 403 ? "hub-access" : "hub-unavailable";
      throw new SafeLoraError(`${this.description}: Git LFS storage answered ${response.status} to a read of ${length} bytes at ${offset}`, code);
    }
    // From a 200 the whole object comes: skip to the offset.
    let skip = response.status === 200 ? offset : 0;
    let filled = 0;
    const reader = response.body.getReader();
    try {
      while (filled < length) {
        const { done, value } = await reader.read();
        if (done) break;
        let chunk = value;
        if (skip > 0) {
          const dropped = Math.min(skip, chunk.byteLength);
          skip -= dropped;
          chunk = chunk.subarray(dropped);
        }
        const take = Math.min(chunk.byteLength, length - filled);
        if (response.status === 206 && take < chunk.byteLength) throw new Error(`${this.description}: asked for ${length} bytes at ${offset}, got more`);
        target.set(chunk.subarray(0, take), filled);
        filled += take;
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
    if (filled !== length) throw new SafeLoraError(`${this.description}: Git LFS storage sent ${filled} of the ${length} bytes asked for at ${offset}; try again later`, "hub-unavailable");
    this.bytesRead += length;
    return target;
  }

  private async fetchRange(offset: number, length: number): Promise<Response> {
    try {
      return await githubFetch(this.access)(this.action.href, { headers: { ...this.action.header, Range: `bytes=${offset}-${offset + length - 1}` } });
    } catch (error) {
      throw new SafeLoraError(`${this.description}: no answer from Git LFS storage (${(error as Error).message}); try again later`, "hub-unavailable", { cause: error });
    }
  }

  async close(): Promise<void> {
    // Nothing is held open between range requests.
  }
}
