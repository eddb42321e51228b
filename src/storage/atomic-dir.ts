import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { SafeLoraError } from "../errors.js";

export interface WriteDirOptions {
  /** Replace a non-empty `target`; without it such a target is an error and is left alone. */
  readonly replace?: boolean;
}

async function entriesOf(path: string): Promise<string[] | null> {
  try {
    const info = await stat(path);
    if (!info.isDirectory()) {
      throw new SafeLoraError(`${path} exists and is not a folder; choose another --out`, "output-exists");
    }
    return await readdir(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/**
 * Fills a hidden staging folder next to `target`, then renames it into place, so that `target` is either
 * untouched or complete — never half-written. On failure the staging folder is removed.
 */
export async function writeDirAtomically(target: string, fill: (staging: string) => Promise<void>, options: WriteDirOptions = {}): Promise<void> {
  const absolute = resolve(target);
  const existing = await entriesOf(absolute);
  if (existing && existing.length > 0 && !options.replace) {
    throw new SafeLoraError(`${target} already exists and is not empty; pass --force to replace it, or choose another --out`, "output-exists");
  }
  const parent = dirname(absolute);
  await mkdir(parent, { recursive: true });
  const tag = `${process.pid}-${randomBytes(4).toString("hex")}`;
  const staging = join(parent, `.${basename(absolute)}.staging-${tag}`);
  await mkdir(staging);
  try {
    await fill(staging);
    if (existing && existing.length > 0) {
      // Move the old folder aside first: rename cannot replace a non-empty folder.
      const old = join(parent, `.${basename(absolute)}.old-${tag}`);
      await rename(absolute, old);
      try {
        await rename(staging, absolute);
      } catch (error) {
        await rename(old, absolute);
        throw error;
      }
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(staging, absolute);
    }
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}
