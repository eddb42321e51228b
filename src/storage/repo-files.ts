import { SafeLoraError } from "../errors.js";
import type { ByteSource } from "./byte-source.js";

/**
 * The files of one model or adapter repo at one fixed state: a local folder, or a Hub (or other forge's) repo
 * pinned to a commit. Everything that reads a model goes through this, so it never knows where files live.
 */
export interface RepoFiles {
  /** Human-readable location for messages: a path, or `org/name@sha`. */
  readonly description: string;
  /** Bytes read so far through this object (text files and byte sources together). */
  readonly bytesRead: number;
  exists(path: string): Promise<boolean>;
  /**
   * Reads a small text file; a missing file is a SafeLoraError with code `missing-file`, and a file larger
   * than `maxBytes` (default MAX_TEXT_BYTES) is refused with `limit-exceeded` before any of it is read.
   */
  readText(path: string, options?: { readonly maxBytes?: number }): Promise<string>;
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

/**
 * The largest text file (config, card, adapter_config.json, safe-lora.yaml) read from a repo. Parsing is
 * synchronous, so an unbounded file would stall the bot's HTTP server for as long as it takes; real ones
 * are kilobytes.
 */
export const MAX_TEXT_BYTES = 1024 * 1024;

/** Refuses a text file over its cap, naming the file and the cap, before a byte of it is read. */
export function checkTextSize(where: string, size: number, maxBytes: number): void {
  if (size > maxBytes) {
    throw new SafeLoraError(
      `${where} is ${size} bytes, more than the ${maxBytes} bytes read from a text file of a repo; a real one is far smaller, so check what was saved there`,
      "limit-exceeded",
    );
  }
}

/**
 * Why `path` is not a safe repo-relative file path, or null when it is. A repo path becomes a resolve URL
 * or a local file name; `..`, `.`, empty segments, a leading `/` or a backslash would let a listing, an
 * index or a command point outside the repo (URL parsers and path.join normalise them away silently).
 * Control characters have no place in a file name and would corrupt messages and URLs.
 */
export function repoPathProblem(path: string): string | null {
  if (path === "") return "it is empty";
  if (path.startsWith("/")) return "it starts with /";
  if (path.includes("\\")) return "it holds a backslash";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) return "it holds a control character";
  for (const segment of path.split("/")) {
    if (segment === "") return "it has an empty segment (//, or a trailing /)";
    if (segment === "." || segment === "..") return `it has a "${segment}" segment`;
  }
  return null;
}

/** A path as messages may show it: quoted, escaped and cut short, since it came from outside. */
export function quotePath(path: string): string {
  return JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}…` : path);
}

/** `path` when it is a safe repo-relative path (see repoPathProblem); otherwise an `unsafe-path` error naming `what`. */
export function checkRepoPath(path: string, what: string): string {
  const problem = repoPathProblem(path);
  if (problem) {
    throw new SafeLoraError(`${what} ${quotePath(path)} is not a path inside the repo (${problem}); use a relative path such as dir/name`, "unsafe-path");
  }
  return path;
}

/** The one spelling of a repo's root folder (as `posix.dirname` gives it for a file at the root). */
export const REPO_ROOT = ".";

/**
 * A folder inside a repo as people write it (`./adapters/x/`, `.` or nothing for the root) in the one form
 * paths use: REPO_ROOT for the root, else a safe relative path. Only a leading `./` and trailing slashes are
 * forgiven. Where a folder comes in from outside (a flag, a comment), this is applied once.
 */
export function repoFolder(folder: string, what: string): string {
  const trimmed = folder.replace(/^\.\/+/, "").replace(/\/+$/, "");
  return trimmed === "" || trimmed === REPO_ROOT ? REPO_ROOT : checkRepoPath(trimmed, what);
}

/** A file's path inside a repo, given the subfolder that holds it (REPO_ROOT, or as repoFolder takes it). Repo paths use `/`. */
export function inSubfolder(subfolder: string, name: string): string {
  const folder = repoFolder(subfolder, "the folder");
  // Concatenated, not path.join'ed: joining would normalise `a/../..` into something that looks harmless.
  return checkRepoPath(folder === REPO_ROOT ? name : `${folder}/${name}`, "the file");
}
