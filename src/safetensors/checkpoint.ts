import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import { inSubfolder, quotePath, repoPathProblem, type RepoFiles } from "../storage/repo-files.js";
import { LazyByteSource } from "../storage/byte-source.js";
import { parseHeader, type TensorInfo } from "./header.js";
import { SafetensorsFile } from "./safetensors-file.js";
import { ShardIndex } from "./schema.js";

export const SINGLE_FILE = "model.safetensors";
export const SHARD_INDEX = "model.safetensors.index.json";

/** Whether a file name is a transformers checkpoint's weights: one file, a shard (save_pretrained's names), or the shard index. */
export function isCheckpointWeightsFile(name: string): boolean {
  return /^model(-\d{5}-of-\d{5})?\.safetensors$/.test(name) || name === SHARD_INDEX;
}
/** Weight files we refuse to open: loading them means unpickling, which can run arbitrary code. */
const PICKLE_WEIGHTS = ["pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth"];

/** Where small documents derived from a file (its header, an index) are kept, by the file's content key. */
export interface DocumentCache {
  getDocument(contentKey: string, kind: string): Promise<string | null>;
  putDocument(contentKey: string, kind: string, text: string): Promise<void>;
}

/** Shard indexes of the largest checkpoints (mixture-of-experts models with ~100 k tensors) are megabytes. */
export const MAX_SHARD_INDEX_BYTES = 32 * 1024 * 1024;

/** A header as cached: enough to re-validate it against the file's size without reading the file. */
const CachedHeader = z.object({ json: z.string(), headerLength: z.number().int(), fileSize: z.number().int() });

/** JSON.parse, or undefined for text that is not JSON (a damaged cache entry). */
function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The weights of a transformers model saved as safetensors, in one file or sharded with an index.
 * Shard headers are read only when a tensor in that shard is asked for; with a document cache, headers
 * and the index of files seen before are not read again at all.
 */
export class Checkpoint {
  private readonly shards = new Map<string, Promise<SafetensorsFile>>();

  private constructor(
    readonly files: RepoFiles,
    /** Tensor name -> file holding it, relative to the repo root. */
    private readonly weightMap: Map<string, string>,
    private readonly documents: DocumentCache | null,
  ) {}

  static async open(files: RepoFiles, subfolder = "", documents: DocumentCache | null = null): Promise<Checkpoint> {
    const at = (name: string) => inSubfolder(subfolder, name);
    if (await files.exists(at(SHARD_INDEX))) {
      const key = await files.contentKey(at(SHARD_INDEX));
      const cached = key && documents ? await documents.getDocument(key, "shard-index") : null;
      // A cached index that does not parse is the cache's fault, not the model's: it is read again from the repo.
      const fromCache = cached === null ? null : ShardIndex.safeParse(safeJson(cached)).data;
      const text = fromCache ? cached! : await files.readText(at(SHARD_INDEX), { maxBytes: MAX_SHARD_INDEX_BYTES });
      let index: ShardIndex;
      try {
        index = fromCache ?? ShardIndex.parse(JSON.parse(text));
      } catch (error) {
        throw new SafeLoraError(
          `${files.description}/${at(SHARD_INDEX)} is not a valid shard index (${(error as Error).message.split("\n")[0]}); re-save the model with save_pretrained`,
          "malformed-safetensors",
          { cause: error },
        );
      }
      for (const file of new Set(Object.values(index.weight_map))) {
        const problem = repoPathProblem(file);
        // Checked before anything is opened: an index naming `../../etc/passwd` must not make us read (and quote) it.
        if (problem) {
          throw new SafeLoraError(
            `${files.description}/${at(SHARD_INDEX)} names a shard ${quotePath(file)} that is not a file beside it (${problem}); nothing was opened. Re-save the model with save_pretrained`,
            "unsafe-path",
          );
        }
      }
      if (key && documents && !fromCache) await documents.putDocument(key, "shard-index", text);
      return new Checkpoint(files, new Map(Object.entries(index.weight_map).map(([name, file]) => [name, at(file)])), documents);
    }
    if (await files.exists(at(SINGLE_FILE))) {
      const checkpoint = new Checkpoint(files, new Map(), documents);
      const file = await checkpoint.shard(at(SINGLE_FILE));
      for (const name of file.header.tensors.keys()) checkpoint.weightMap.set(name, at(SINGLE_FILE));
      return checkpoint;
    }
    for (const pickle of PICKLE_WEIGHTS) {
      if (await files.exists(at(pickle))) {
        throw new SafeLoraError(
          `${files.description} has weights only as ${pickle} (a pickle, which can run code when loaded, so it is never opened); ` +
            "use a release with model.safetensors, or convert it yourself with transformers' save_pretrained(safe_serialization=True)",
          "pickle-refused",
        );
      }
    }
    throw new SafeLoraError(
      `${files.description} has neither ${at(SINGLE_FILE)} nor ${at(SHARD_INDEX)}: point to a model with a transformers checkpoint saved as safetensors`,
      "missing-file",
    );
  }

  get description(): string {
    return this.files.description;
  }

  get bytesRead(): number {
    return this.files.bytesRead;
  }

  /** Every tensor name in the checkpoint (from the index for sharded checkpoints, without opening shards). */
  names(): IterableIterator<string> {
    return this.weightMap.keys();
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  async info(name: string): Promise<TensorInfo> {
    return (await this.fileOf(name)).info(name);
  }

  async readBytes(name: string, into?: Uint8Array): Promise<Uint8Array> {
    return (await this.fileOf(name)).readBytes(name, into);
  }

  /** The content key of the file holding `name`, or null when the files have none (local folders). */
  async contentKeyOf(name: string): Promise<string | null> {
    const path = this.weightMap.get(name);
    return path === undefined ? null : this.files.contentKey(path);
  }

  close(): Promise<void> {
    return this.files.close();
  }

  /** The weight files this run used (their headers were needed), with sizes and content keys when known. */
  async filesUsed(): Promise<Array<{ path: string; size: number; contentKey: string | null }>> {
    const used = [];
    for (const [path, file] of this.shards) {
      const opened = await file.catch(() => null);
      if (opened) used.push({ path, size: opened.source.size, contentKey: await this.files.contentKey(path) });
    }
    return used;
  }

  private async fileOf(name: string): Promise<SafetensorsFile> {
    const path = this.weightMap.get(name);
    if (path === undefined) throw new SafeLoraError(`${this.description} has no tensor "${name}"`, "missing-tensor");
    const file = await this.shard(path);
    if (!file.header.tensors.has(name)) {
      throw new SafeLoraError(`${this.description}: the shard index puts "${name}" in ${path}, but that file does not hold it`, "malformed-safetensors");
    }
    return file;
  }

  private shard(path: string): Promise<SafetensorsFile> {
    let file = this.shards.get(path);
    if (!file) {
      file = this.openShard(path);
      // A failed open is not cached, so a later call reports the same error rather than a stale rejection.
      file.catch(() => this.shards.delete(path));
      this.shards.set(path, file);
    }
    return file;
  }

  private async openShard(path: string): Promise<SafetensorsFile> {
    const description = `${this.description}/${path}`;
    const key = this.documents ? await this.files.contentKey(path) : null;
    const cached = key ? await this.documents!.getDocument(key, "safetensors-header") : null;
    const parsed = cached === null ? null : CachedHeader.safeParse(safeJson(cached)).data;
    if (parsed) {
      const { json, headerLength, fileSize } = parsed;
      // A cached header that does not validate is a damaged cache entry, not a malformed model: the file is read instead.
      const header = (() => {
        try {
          return parseHeader(description, json, headerLength, fileSize);
        } catch {
          return null;
        }
      })();
      if (header) return SafetensorsFile.withHeader(new LazyByteSource(description, fileSize, () => this.files.openBytes(path)), header);
    }
    const file = await SafetensorsFile.open(await this.files.openBytes(path));
    const { header, source } = file;
    if (key) {
      await this.documents!.putDocument(key, "safetensors-header", JSON.stringify({ json: header.json, headerLength: header.dataStart - 8, fileSize: source.size }));
    }
    return file;
  }
}
