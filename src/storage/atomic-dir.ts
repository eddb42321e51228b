import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { lstat, mkdir, readdir, rename, rm, rmdir } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { SafeLoraError } from "../errors.js";
import { cleanUpOnExit } from "./exit-cleanup.js";
import { removeFoldersOfGoneProcesses } from "./process-alive.js";

export interface WriteDirOptions {
  /**
   * Asked before a non-empty `target` is replaced, with its entries; it throws to refuse. Without it a
   * non-empty target is an error and is left alone. Every entry it accepts may be deleted.
   */
  readonly mayReplace?: (target: string, entries: readonly string[]) => Promise<void> | void;
  /**
   * The entry that says the folder is complete (a variant's report). When a folder is replaced file by file it
   * is removed first and moved in last, so a replacement cut short leaves a folder without it — visibly
   * incomplete, and not taken for a previous output — rather than new files beside an old report.
   */
  readonly completionMarker?: string;
}

/** The entries of `path`, or null when it does not exist; a non-folder there is refused. */
async function entriesOf(path: string): Promise<string[] | null> {
  try {
    const info = await lstat(path);
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
 * Checks that `target` may be written: absent, empty, or accepted by `mayReplace`. Returns its entries (null:
 * absent). Callers may run it early, before the work that fills the folder, to fail before that work.
 */
export async function checkTarget(target: string, options: WriteDirOptions = {}): Promise<string[] | null> {
  const existing = await entriesOf(resolve(target));
  if (existing && existing.length > 0) {
    if (!options.mayReplace) {
      throw new SafeLoraError(`${target} already exists and is not empty; pass --force to replace it, or choose another --out`, "output-exists");
    }
    await options.mayReplace(resolve(target), existing);
  }
  return existing;
}

const stagingPattern = (name: string) => new RegExp(`^\\.${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.(?:staging|old)-(\\d+)-[0-9a-f]{8}$`);

/**
 * Removes staging folders that a killed run (SIGKILL, power loss) left next to `target`. Only names this
 * function's own pattern produces, of processes that are gone, are touched: a concurrent run keeps its own.
 */
async function removeStaleStaging(parent: string, name: string): Promise<void> {
  await removeFoldersOfGoneProcesses(parent, await readdir(parent), stagingPattern(name));
}

/**
 * Moves the staged files over the old ones one by one: renaming a file over a file is atomic, while a folder
 * can only be renamed over an empty one. So `target` never goes missing and each of its files is always
 * whole, old or new. Old entries that the new folder does not have are removed last.
 */
async function replaceFiles(staging: string, target: string, old: readonly string[], marker: string | undefined): Promise<void> {
  const staged = await readdir(staging);
  const last = marker !== undefined && staged.includes(marker) ? [marker] : [];
  if (last.length > 0) await rm(join(target, marker!), { force: true });
  for (const entry of [...staged.filter((name) => !last.includes(name)), ...last]) await rename(join(staging, entry), join(target, entry));
  for (const entry of old) if (!staged.includes(entry)) await rm(join(target, entry), { recursive: true, force: true });
}

/**
 * Fills a hidden staging folder next to `target`, then moves it into place. A new or empty `target` appears
 * complete in one rename; an existing one that `mayReplace` accepts is replaced file by file. On failure, on
 * SIGINT/SIGTERM/SIGHUP and at exit, the staging folder is removed; ones left by killed runs are removed on the next run.
 */
export async function writeDirAtomically(target: string, fill: (staging: string) => Promise<void>, options: WriteDirOptions = {}): Promise<void> {
  const absolute = resolve(target);
  const parent = dirname(absolute);
  await mkdir(parent, { recursive: true });
  await removeStaleStaging(parent, basename(absolute));
  const existing = await checkTarget(target, options);
  const replacing = existing !== null && existing.length > 0;
  const staging = join(parent, `.${basename(absolute)}.staging-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(staging);
  const release = cleanUpOnExit(() => rmSync(staging, { recursive: true, force: true }));
  try {
    await fill(staging);
    if (replacing) {
      await replaceFiles(staging, absolute, existing, options.completionMarker);
      await rmdir(staging);
    } else {
      await rename(staging, absolute);
    }
  } finally {
    release();
    await rm(staging, { recursive: true, force: true });
  }
}
