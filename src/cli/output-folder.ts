import { lstat, readFile, realpath } from "node:fs/promises";
import { isAbsolute, join, relative, resolve } from "node:path";
import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import { isVariantFileName, REPORT_FILE } from "../pipeline/variant-files.js";
import { checkTarget, type WriteDirOptions } from "../storage/atomic-dir.js";

/** What marks a folder as written by this tool: its report (more fields are there; these are enough to tell). */
const PreviousReport = z.looseObject({ schemaVersion: z.literal(1), method: z.literal("safe-lora") });

/** The real path of `path`, or its absolute path when it does not exist (yet). */
async function realOrResolved(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}

const contains = (outer: string, inner: string) => {
  const rel = relative(outer, inner);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
};

/**
 * Refuses to let `--force` replace anything this tool did not write: the current directory, an input folder
 * or a folder above one of them, and any folder that is not a previous output (its report, and nothing but the
 * files an output holds). `protect` names the local input folders.
 */
async function assertReplaceable(out: string, entries: readonly string[], protect: readonly string[]): Promise<void> {
  const target = await realOrResolved(out);
  for (const [what, path] of [["the current directory", process.cwd()], ...protect.map((path) => ["the input folder", path])] as const) {
    if (contains(target, await realOrResolved(path))) {
      throw new SafeLoraError(`--out ${out} is ${what} ${path} or a folder above it; --force replaces only a previous output of safe-lora: choose another --out`, "output-exists");
    }
  }
  const foreign: string[] = [];
  for (const entry of entries) {
    const info = await lstat(join(out, entry));
    if (!info.isFile() || !isVariantFileName(entry)) foreign.push(entry);
  }
  let report: unknown = null;
  try {
    report = JSON.parse(await readFile(join(out, REPORT_FILE), "utf8"));
  } catch {
    // No report, or not JSON: not a previous output.
  }
  if (foreign.length > 0 || !PreviousReport.safeParse(report).success) {
    const why = foreign.length > 0 ? `it holds ${foreign.slice(0, 3).map((entry) => `"${entry}"`).join(", ")}${foreign.length > 3 ? ", …" : ""}, which safe-lora does not write` : `it has no ${REPORT_FILE} of safe-lora`;
    throw new SafeLoraError(`--out ${out} is not a previous output of safe-lora (${why}), so --force will not replace it; choose another --out or empty it yourself`, "output-exists");
  }
}

/**
 * Checks `--out` before any input is opened, so that a run that cannot write its result fails before it
 * downloads; returns the options for the final write, which checks again (the folder may change meanwhile).
 */
export async function checkOutputFolder(out: string, options: { force: boolean; protect: readonly string[] }): Promise<WriteDirOptions> {
  const write: WriteDirOptions = options.force ? { mayReplace: (target, entries) => assertReplaceable(target, entries, options.protect) } : {};
  await checkTarget(out, write);
  return write;
}
