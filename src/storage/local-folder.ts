import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { SafeLoraError } from "../errors.js";
import { FileByteSource, type ByteSource } from "../safetensors/byte-source.js";
import type { RepoFiles } from "./repo-files.js";

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

  async exists(path: string): Promise<boolean> {
    try {
      return (await stat(join(this.path, path))).isFile();
    } catch {
      return false;
    }
  }

  async readText(path: string): Promise<string> {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.path, path));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        throw new SafeLoraError(`${join(this.path, path)} does not exist`, "missing-file", { cause: error });
      }
      throw error;
    }
    this.textBytes += bytes.byteLength;
    return bytes.toString("utf8");
  }

  /** Hashing gigabytes to key a cache would cost more than reading them: local files are not cached. */
  async contentKey(): Promise<string | null> {
    return null;
  }

  async openBytes(path: string): Promise<ByteSource> {
    try {
      const source = await FileByteSource.open(join(this.path, path));
      this.sources.push(source);
      return source;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        throw new SafeLoraError(`${join(this.path, path)} does not exist`, "missing-file", { cause: error });
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.sources.map((source) => source.close()));
  }
}
