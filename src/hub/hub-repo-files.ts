import { downloadFile, listFiles, modelInfo } from "@huggingface/hub";
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

/** One file of a Hub repo at a pinned commit, read by HTTP range requests on its resolve URL. */
class HubByteSource implements ByteSource {
  bytesRead = 0;

  constructor(
    readonly description: string,
    private readonly blob: Blob,
    private readonly explain: (error: unknown) => unknown,
  ) {}

  get size(): number {
    return this.blob.size;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`read of ${length} bytes at ${offset} is outside ${this.description} (${this.size} bytes)`);
    }
    if (length === 0) return new Uint8Array(0);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await this.blob.slice(offset, offset + length).arrayBuffer());
    } catch (error) {
      throw this.explain(error);
    }
    if (bytes.byteLength !== length) throw new Error(`${this.description}: asked for ${length} bytes at ${offset}, got ${bytes.byteLength}`);
    this.bytesRead += length;
    if (!into) return bytes;
    const target = into.subarray(0, length);
    target.set(bytes);
    return target;
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
   * A lazy blob over the file's resolve URL at the pinned commit. Size and ETag come from the tree listing,
   * so opening a file sends no request; each slice read is one range request.
   */
  private async blob(path: string): Promise<Blob> {
    const entry = this.tree.get(path);
    if (!entry) throw new SafeLoraError(`${this.description} has no file ${path}`, "missing-file");
    const params = hubParams(this.access);
    // Every listed path was checked when the tree was read; the URL is still checked after the parser has
    // normalised it, since this is where the bot's token is sent.
    const root = `${params.hubUrl}/${this.id}/resolve/${encodeURIComponent(this.sha)}/`;
    const url = `${root}${path.split("/").map(encodeURIComponent).join("/")}`;
    const [resolved, expected] = [new URL(url), new URL(root)];
    if (resolved.origin !== expected.origin || !resolved.pathname.startsWith(expected.pathname)) {
      throw new SafeLoraError(`${this.description}: the file ${quotePath(path)} does not resolve inside the repo; nothing was read`, "unsafe-path");
    }
    const blob = await downloadFile({
      ...params,
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
    const source = new HubByteSource(`${this.description}/${path}`, await this.blob(path), (error) => explainHubError(error, this.id, this.access));
    this.sources.push(source);
    return source;
  }

  async close(): Promise<void> {
    // HTTP range reads hold nothing open.
  }
}
