import type { z } from "zod";
import { SafeLoraError } from "../errors.js";
import type { BotPullRequest, FileToCommit, PinnedRepo } from "../forge/forge.js";
import type { WeightsInput } from "../pipeline/patch-report.js";
import { REPORT_FILE } from "../pipeline/variant-files.js";
import type { PatchRecord } from "../report/record.js";
import { variantFolderOf } from "../report/variant-folder.js";
import type { JobContext } from "./context.js";

/** The report committed for `folder` at a revision as `schema` reads it, or null when there is none (or it is not one). */
export async function readCommittedReport<T>(files: PinnedRepo, folder: string, schema: z.ZodType<T>): Promise<T | null> {
  const path = `${variantFolderOf(folder)}/${REPORT_FILE}`;
  if (!(await files.exists(path))) return null;
  try {
    const parsed = schema.safeParse(JSON.parse(await files.readText(path)));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** A model of the pair as a record names it: its id, the commit read, the content keys of its weight files. */
export async function modelRecord(input: WeightsInput): Promise<PatchRecord["base"]> {
  const weights: string[] = [];
  for (const path of (input.files as PinnedRepo).paths?.() ?? []) {
    if (!/\.safetensors(\.index\.json)?$/.test(path)) continue;
    const key = await input.files.contentKey(path);
    if (key) weights.push(key);
  }
  return { id: input.location ?? input.files.description, revision: input.revision ?? "local", weights: weights.sort() };
}

/** Commits to the pull request's head; on a stale head (412) looks again: maybe our commit is already there. */
export async function pushWithRetry(
  context: JobContext,
  params: {
    readonly repo: string;
    readonly pr: Pick<BotPullRequest, "num">;
    readonly files: readonly FileToCommit[];
    /** The commit's title. */
    readonly title: string;
    /** Whether, after a stale head, there is nothing (more) to commit onto the new one: a retried commit that landed. */
    readonly nothingToDo: (head: PinnedRepo) => Promise<boolean>;
  },
) {
  const { repo, pr, files, title, nothingToDo } = params;
  for (let attempt = 1; ; attempt++) {
    const head = await context.forge.open({ repo, revision: context.forge.pullRequestHead(repo, pr.num) });
    if (attempt > 1 && (await nothingToDo(head))) return { commit: head.sha };
    const result = await context.forge.pushToPullRequest({ repo, num: pr.num, parent: head.sha, title, files });
    if (result !== "stale") return result;
    if (attempt >= 5) throw new SafeLoraError(`${repo}: pull request #${pr.num} kept moving while committing; will retry`, "hub-unavailable");
  }
}
