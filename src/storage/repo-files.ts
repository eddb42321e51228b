import { posix } from "node:path";
import type { ByteSource } from "../safetensors/byte-source.js";

/**
 * The files of one model or adapter repo at one fixed state: a local folder, or (later) a Hub repo
 * pinned to a commit. Everything that reads a model goes through this, so it never knows where files live.
 */
export interface RepoFiles {
  /** Human-readable location for messages: a path, or `org/name@sha`. */
  readonly description: string;
  /** Bytes read so far through this object (text files and byte sources together). */
  readonly bytesRead: number;
  exists(path: string): Promise<boolean>;
  /** Reads a small text file; a missing file is a SafeLoraError with code `missing-file`. */
  readText(path: string): Promise<string>;
  /**
   * A key that changes exactly when the file's content changes (LFS sha256 or git blob id), or null when
   * unknown (local folders): caches are keyed by it, so they survive commits that leave the file alone.
   */
  contentKey(path: string): Promise<string | null>;
  /** Opens a file for ranged reads. */
  openBytes(path: string): Promise<ByteSource>;
  /** Closes every byte source this object opened. */
  close(): Promise<void>;
}

/** A file's path inside a repo, given the subfolder that holds it ("" for the root). Repo paths use `/`. */
export function inSubfolder(subfolder: string, name: string): string {
  return subfolder ? posix.join(subfolder, name) : name;
}
