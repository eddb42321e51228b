import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { SafeLoraError } from "../errors.js";
import { FileByteSource, type ByteSource } from "./byte-source.js";
import { checkRepoPath, checkTextSize, MAX_TEXT_BYTES, type RepoFiles } from "./repo-files.js";

/** A model or adapter folder on the local disk. */
export class LocalFolder implements RepoFiles {
  private readonly sources: ByteSource[] = [];
  private textBytes = 0;

  constructor(readonly path: string) {}

  get description(): string {
    return this.path;
  }

  get bytesRead(): number {
    return this.sources.reduce((sum, source) => sum + source.bytesRead, this.textBytes);
  }

  /**
   * The disk path of a file of this folder. Paths come from indexes and configs inside the folder, so they
   * are checked like Hub paths: `../../etc/passwd` in a shard index must never be opened.
   */
  private fileOf(path: string): string {
    return join(this.path, checkRepoPath(path, `a file of ${this.path}`));
  }

  async exists(path: string): Promise<boolean> {
    try {
      return (await stat(this.fileOf(path))).isFile();
    } catch (error) {
      if (error instanceof SafeLoraError) throw error;
      return false;
    }
  }

  async readText(path: string, options: { readonly maxBytes?: number } = {}): Promise<string> {
    const file = this.fileOf(path);
    const maxBytes = options.maxBytes ?? MAX_TEXT_BYTES;
    let handle;
    try {
      handle = await open(file, "r");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        throw new SafeLoraError(`${file} does not exist`, "missing-file", { cause: error });
      }
      throw error;
    }
    try {
      // The size is checked on the open file, and at most the cap is read, so a file that grows meanwhile changes nothing.
      const { size } = await handle.stat();
      checkTextSize(file, size, maxBytes);
      const buffer = Buffer.alloc(size + 1);
      let length = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, length, buffer.byteLength - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length === buffer.byteLength) break;
      }
      checkTextSize(file, length, maxBytes);
      this.textBytes += length;
      return buffer.toString("utf8", 0, length);
    } finally {
      await handle.close();
    }
  }

  /** Hashing gigabytes to key a cache would cost more than reading them: local files are not cached. */
  async contentKey(_path: string): Promise<string | null> {
    return null;
  }

  async openBytes(path: string): Promise<ByteSource> {
    const file = this.fileOf(path);
    try {
      const source = await FileByteSource.open(file);
      this.sources.push(source);
      return source;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        throw new SafeLoraError(`${file} does not exist`, "missing-file", { cause: error });
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.sources.map((source) => source.close()));
  }
}
