import { downloadFile, HubApiError, listFiles, modelInfo } from "@huggingface/hub";
import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import type { ByteSource } from "../storage/byte-source.js";
import { checkTextSize, MAX_TEXT_BYTES, quotePath, repoPathProblem, type RepoFiles } from "../storage/repo-files.js";
import { explainHubError, hubParams, type HubAccess } from "./hub-access.js";
import type { RepoRef } from "./repo-ref.js";

/** The parts of the Hub's model info this project reads. */
export const HubModelInfo = z.looseObject({
  sha: z.string().regex(/^[0-9a-f]{40}$/),
  cardData: z.looseObject({}).nullish(),
  config: z.looseObject({}).nullish(),
  tags: z.array(z.string()).nullish(),
  gated: z.union([z.literal(false), z.string()]).nullish(),
  private: z.boolean().nullish(),
});
export type HubModelInfo = z.infer<typeof HubModelInfo>;

interface TreeFile {
  readonly size: number;
  /** LFS sha256 when the file is in LFS, else its git blob id: both change exactly with the content. */
  readonly contentKey: string;
}

const TreeEntry = z.looseObject({
  type: z.string(),
  path: z.string(),
  size: z.number().int().nonnegative(),
  oid: z.string(),
  lfs: z.looseObject({ oid: z.string() }).nullish(),
});

/** Model info at a revision, with errors that say what to do (and a missing revision told from a missing repo). */
export async function fetchModelInfo(access: HubAccess, ref: RepoRef): Promise<HubModelInfo> {
  const params = hubParams(access);
  try {
    const raw = await modelInfo({ ...params, name: ref.id, revision: ref.revision, additionalFields: ["sha", "cardData", "config", "tags"] });
    return HubModelInfo.parse(raw);
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404 && ref.revision !== "main") {
      const exists = await modelInfo({ ...params, name: ref.id }).then(
        () => true,
        () => false,
      );
      if (exists) {
        throw new SafeLoraError(`${ref.id} has no revision "${ref.revision}"; use a branch, tag or commit sha that exists`, "hub-not-found", { cause: error });
      }
    }
    throw explainHubError(error, ref.id, access);
  }
}

/** An empty file needs no request (and a zero-length ranged read would be malformed). */
const entry0 = (blob: Blob) => blob.size === 0;

/**
 * A tensor read is split into parts of this size, fetched by up to PARALLEL_PARTS range requests at once: one
 * HTTP stream rarely fills the link (or the server's disk), several do. Each part streams straight into the
 * caller's buffer, so memory stays at that buffer whatever the number of streams.
 */
export const PART_BYTES = 4 * 1024 * 1024;
export const PARALLEL_PARTS = 4;

/** Where and how one file is fetched: its resolve URL at the pinned commit, with the project's retrying fetch. */
interface ResolvedFile {
  readonly url: string;
  readonly size: number;
  readonly fetch: typeof fetch;
  readonly accessToken?: string;
}

/** The Hub's error for a response that is not the range asked for, in the form explainHubError words. */
async function rangeError(response: Response): Promise<HubApiError> {
  const error = new HubApiError(response.url, response.status, response.headers.get("X-Request-Id") ?? undefined);
  const text = await response.text().catch(() => "");
  let detail = text.slice(0, 200);
  try {
    const json = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof json.error === "string" || typeof json.message === "string") detail = String(json.error ?? json.message);
  } catch {
    // Not JSON: the text is the detail.
  }
  error.message = `${response.ok ? `expected a range (206), got ${response.status}` : detail || `Api error with status ${response.status}`}. URL: ${response.url}`;
  return error;
}

/** One file of a Hub repo at a pinned commit, read by HTTP range requests on its resolve URL. */
class HubByteSource implements ByteSource {
  bytesRead = 0;

  constructor(
    readonly description: string,
    private readonly file: ResolvedFile,
    private readonly explain: (error: unknown) => unknown,
  ) {}

  get size(): number {
    return this.file.size;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`read of ${length} bytes at ${offset} is outside ${this.description} (${this.size} bytes)`);
    }
    // A fresh buffer keeps byteOffset 0, so typed-array views of the result are always aligned.
    const target = into ? into.subarray(0, length) : new Uint8Array(length);
    if (length === 0) return target;
    const parts: Array<{ at: number; length: number }> = [];
    for (let at = 0; at < length; at += PART_BYTES) parts.push({ at, length: Math.min(PART_BYTES, length - at) });
    // The first failure stops the other streams, and the read ends only once none of them writes into `target`.
    const stop = new AbortController();
    let failure: { error: unknown } | null = null;
    let next = 0;
    const stream = async () => {
      while (!failure && next < parts.length) {
        const part = parts[next++]!;
        try {
          await this.fetchInto(target.subarray(part.at, part.at + part.length), offset + part.at, stop.signal);
        } catch (error) {
          failure ??= { error };
          stop.abort();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, parts.length) }, stream));
    if (failure) throw this.explain((failure as { error: unknown }).error);
    this.bytesRead += length;
    return target;
  }

  /** Fetches `target.byteLength` bytes at `offset` into `target`, as the body arrives. */
  private async fetchInto(target: Uint8Array, offset: number, signal: AbortSignal): Promise<void> {
    const { url, fetch, accessToken } = this.file;
    const response = await fetch(url, {
      headers: { Range: `bytes=${offset}-${offset + target.byteLength - 1}`, ...(accessToken ? { Authorization: `Bearer ${accessToken}` } : {}) },
      signal,
    });
    if (response.status !== 206 || !response.body) throw await rangeError(response);
    let filled = 0;
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      if (filled + chunk.byteLength > target.byteLength) throw new Error(`${this.description}: asked for ${target.byteLength} bytes at ${offset}, got more`);
      target.set(chunk, filled);
      filled += chunk.byteLength;
    }
    if (filled !== target.byteLength) throw new Error(`${this.description}: asked for ${target.byteLength} bytes at ${offset}, got ${filled}`);
  }

  async close(): Promise<void> {
    // Nothing is held open between range requests.
  }
}

/**
 * A model repo on the Hub pinned to one commit: every read of a job sees the same files, whatever is pushed
 * meanwhile. Files are read through @huggingface/hub with Xet off, so reads are range requests on resolve URLs.
 */
export class HubRepoFiles implements RepoFiles {
  private readonly sources: ByteSource[] = [];
  private textBytes = 0;

  private constructor(
    private readonly access: HubAccess,
    readonly id: string,
    /** The commit every read uses. */
    readonly sha: string,
    readonly info: HubModelInfo,
    private readonly tree: ReadonlyMap<string, TreeFile>,
  ) {}

  /** Pins `ref` to its commit and lists the files there. */
  static async open(access: HubAccess, ref: RepoRef): Promise<HubRepoFiles> {
    const params = hubParams(access);
    const info = await fetchModelInfo(access, ref);
    const tree = new Map<string, TreeFile>();
    let unsafeListing: string | null = null;
    try {
      for await (const raw of listFiles({ ...params, repo: { type: "model", name: ref.id }, revision: info.sha, recursive: true })) {
        const entry = TreeEntry.parse(raw);
        const problem = repoPathProblem(entry.path);
        // The Hub refuses such paths in commits, so a listing that holds one is not to be trusted at all: turned
        // into a resolve URL, `../../other/private/resolve/main/x` would fetch another repo with the bot's token.
        if (problem) {
          unsafeListing = `${quotePath(entry.path)} (${problem})`;
          break;
        }
        if (entry.type === "file") tree.set(entry.path, { size: entry.size, contentKey: entry.lfs?.oid ?? entry.oid });
      }
    } catch (error) {
      throw explainHubError(error, ref.id, access);
    }
    if (unsafeListing) {
      throw new SafeLoraError(`the Hub listed a file ${unsafeListing} in ${ref.id}@${info.sha.slice(0, 12)}, which is not a path inside the repo; nothing of it is read`, "unsafe-path");
    }
    return new HubRepoFiles(access, ref.id, info.sha, info, tree);
  }

  get description(): string {
    return `${this.id}@${this.sha.slice(0, 12)}`;
  }

  get private(): boolean {
    return Boolean(this.info.private);
  }

  get bytesRead(): number {
    return this.sources.reduce((sum, source) => sum + source.bytesRead, this.textBytes);
  }

  /** Paths of every file at the pinned commit. */
  paths(): string[] {
    return [...this.tree.keys()];
  }

  async exists(path: string): Promise<boolean> {
    return this.tree.has(path);
  }

  async contentKey(path: string): Promise<string | null> {
    return this.tree.get(path)?.contentKey ?? null;
  }

  /**
   * The file's resolve URL at the pinned commit, and its size from the tree listing: opening a file sends no
   * request. Every listed path was checked when the tree was read; the URL is still checked after the parser
   * has normalised it, since this is where the bot's token is sent.
   */
  private resolve(path: string): { url: string; entry: TreeFile } {
    const entry = this.tree.get(path);
    if (!entry) throw new SafeLoraError(`${this.description} has no file ${path}`, "missing-file");
    const root = `${hubParams(this.access).hubUrl}/${this.id}/resolve/${encodeURIComponent(this.sha)}/`;
    const url = `${root}${path.split("/").map(encodeURIComponent).join("/")}`;
    const [resolved, expected] = [new URL(url), new URL(root)];
    if (resolved.origin !== expected.origin || !resolved.pathname.startsWith(expected.pathname)) {
      throw new SafeLoraError(`${this.description}: the file ${quotePath(path)} does not resolve inside the repo; nothing was read`, "unsafe-path");
    }
    return { url, entry };
  }

  /** A lazy blob over the file (@huggingface/hub's, with Xet off); reading it is one request. */
  private async blob(path: string): Promise<Blob> {
    const { url, entry } = this.resolve(path);
    const blob = await downloadFile({
      ...hubParams(this.access),
      repo: { type: "model", name: this.id },
      path,
      revision: this.sha,
      xet: false,
      downloadInfo: { url, size: entry.size, etag: entry.contentKey },
    });
    if (!blob) throw new SafeLoraError(`${this.description} has no file ${path}`, "missing-file");
    return blob;
  }

  async readText(path: string, options: { readonly maxBytes?: number } = {}): Promise<string> {
    const size = this.tree.get(path)?.size;
    // The listing gives the size, so an oversized file is refused before it is downloaded.
    if (size !== undefined) checkTextSize(`${this.description}/${path}`, size, options.maxBytes ?? MAX_TEXT_BYTES);
    const blob = await this.blob(path);
    let text: string;
    try {
      text = entry0(blob) ? "" : await blob.text();
    } catch (error) {
      throw explainHubError(error, this.id, this.access);
    }
    this.textBytes += blob.size;
    return text;
  }

  async openBytes(path: string): Promise<ByteSource> {
    const { url, entry } = this.resolve(path);
    const { fetch, accessToken } = hubParams(this.access);
    const file = { url, size: entry.size, fetch, ...(accessToken ? { accessToken } : {}) };
    const source = new HubByteSource(`${this.description}/${path}`, file, (error) => explainHubError(error, this.id, this.access));
    this.sources.push(source);
    return source;
  }

  async close(): Promise<void> {
    // HTTP range reads hold nothing open.
  }
}
