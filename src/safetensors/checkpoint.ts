import { SafeLoraError } from "../errors.js";
import { inSubfolder, type RepoFiles } from "../storage/repo-files.js";
import type { TensorInfo } from "./header.js";
import { SafetensorsFile } from "./safetensors-file.js";
import { ShardIndex } from "./schema.js";

export const SINGLE_FILE = "model.safetensors";
export const SHARD_INDEX = "model.safetensors.index.json";
/** Weight files we refuse to open: loading them means unpickling, which can run arbitrary code. */
const PICKLE_WEIGHTS = ["pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth"];

/**
 * The weights of a transformers model saved as safetensors, in one file or sharded with an index.
 * Shard headers are read only when a tensor in that shard is asked for.
 */
export class Checkpoint {
  private readonly shards = new Map<string, Promise<SafetensorsFile>>();

  private constructor(
    readonly files: RepoFiles,
    /** Tensor name -> file holding it, relative to the checkpoint folder. */
    private readonly weightMap: Map<string, string>,
  ) {}

  static async open(files: RepoFiles, subfolder = ""): Promise<Checkpoint> {
    const at = (name: string) => inSubfolder(subfolder, name);
    if (await files.exists(at(SHARD_INDEX))) {
      const text = await files.readText(at(SHARD_INDEX));
      let index: ShardIndex;
      try {
        index = ShardIndex.parse(JSON.parse(text));
      } catch (error) {
        throw new SafeLoraError(
          `${files.description}/${at(SHARD_INDEX)} is not a valid shard index (${(error as Error).message.split("\n")[0]}); re-save the model with save_pretrained`,
          "malformed-safetensors",
          { cause: error },
        );
      }
      return new Checkpoint(files, new Map(Object.entries(index.weight_map).map(([name, file]) => [name, at(file)])));
    }
    if (await files.exists(at(SINGLE_FILE))) {
      const checkpoint = new Checkpoint(files, new Map());
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
      `${files.description} has neither ${at(SINGLE_FILE)} nor ${at(SHARD_INDEX)}: point to a folder with a transformers checkpoint saved as safetensors`,
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

  close(): Promise<void> {
    return this.files.close();
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
      file = this.files.openBytes(path).then((source) => SafetensorsFile.open(source));
      // A failed open is not cached, so a later call reports the same error rather than a stale rejection.
      file.catch(() => this.shards.delete(path));
      this.shards.set(path, file);
    }
    return file;
  }
}
