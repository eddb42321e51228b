import { posix } from "node:path";
import { z } from "zod";
import type { RepoConfig } from "../config/bot-config.js";
import { isUsersToFix } from "../errors.js";
import type { BotPullRequest, FileToCommit, ForgeName, PinnedRepo } from "../forge/forge.js";
import { openInputs } from "../pipeline/open-inputs.js";
import { FULL_OPERATOR_FORMULA, patchFullFinetune } from "../pipeline/patch-full-finetune.js";
import { finetuneVariantFiles } from "../pipeline/variant-files.js";
import { formatSelection, Selection } from "../projection/selection.js";
import { jobKey } from "../queue/job-key.js";
import { finetunePullRequestDescription } from "../report/finetune-pr-body.js";
import { FullFinetuneReport, type FinetuneRecord } from "../report/full-finetune-schema.js";
import { code, escapeMarkdown, plainLine } from "../report/markdown.js";
import { pullRequestTitle } from "../report/pr-body.js";
import { sameRecord } from "../report/record.js";
import { variantFolderOf } from "../report/variant-folder.js";
import { TOOL } from "../version.js";
import { onForge, type JobContext } from "./context.js";
import { finetuneFileKeys } from "./finetunes.js";
import type { JobKindDefinition } from "./job-kinds.js";
import { modelAccessCheck } from "./model-access.js";
import { failureText, postFailureNotice, resolveNotices } from "./notices.js";
import { cardContextOf, CommandRef, pullRequestChanges, stepAside, type PatchOutcome } from "./patch-job.js";
import { repoDeadline } from "./repo-deadline.js";
import { loadRepoConfig } from "./repo-config.js";
import { modelRecord, pushWithRetry, readCommittedReport } from "./variant-commits.js";

export const FinetunePayload = z.object({
  repo: z.string(),
  /** The fine-tune's folder, "." for the root. */
  folder: z.string(),
  /** The commit to read the fine-tune at; null: the head of main when the job runs. */
  sha: z.string().nullable(),
  /** A command's selection; null: the repo's configured one. */
  selection: Selection.nullable().default(null),
  /** Set when a comment asked for it: the acknowledgement to edit with the result. */
  command: CommandRef.nullable().default(null),
});
export type FinetunePayload = z.infer<typeof FinetunePayload>;

/** One re-patch per comment that asked for it, however often the command job runs. */
export function commandFinetuneKey(params: { forge: ForgeName; repo: string; folder: string; commentId: string }): string {
  return jobKey("finetune", params.forge, params.repo, params.folder, "comment", params.commentId);
}

export const committedFinetuneReport = (files: PinnedRepo, folder: string) => readCommittedReport(files, folder, FullFinetuneReport);

/** Per fine-tune version and configuration, like a patch job's key: a README-only commit makes no new job. */
export function finetuneKey(params: { forge: ForgeName; repo: string; folder: string; filesKey: string; configKey: string }): string {
  return jobKey("finetune", params.forge, params.repo, params.folder, params.filesKey, params.configKey);
}

/** Why not to open a pull request for these fine-tune files again, or null. */
async function alreadyCovered(context: JobContext, repo: string, mine: readonly BotPullRequest[], main: PinnedRepo, folder: string, finetuned: Record<string, string>): Promise<string | null> {
  const same = (report: FullFinetuneReport | null) => report?.record !== undefined && JSON.stringify(Object.entries(report.record.finetuned).sort()) === JSON.stringify(Object.entries(finetuned).sort());
  if (same(await committedFinetuneReport(main, folder))) return "a variant of these fine-tune files is already on main";
  for (const pr of mine.filter((p) => p.status === "closed" || p.status === "merged")) {
    const head = await context.forge.open({ repo, revision: context.forge.pullRequestHead(repo, pr.num) }).catch(() => null);
    if (head && same(await committedFinetuneReport(head, folder))) {
      return pr.status === "closed" ? `pull request #${pr.num} for these fine-tune files was closed; not reopening it` : `pull request #${pr.num} was merged`;
    }
  }
  return null;
}

/**
 * One full fine-tune folder: patch it (W_aligned + C·ΔW where selected) and publish the variant, a sharded
 * checkpoint in `safe-lora/`, as a pull request of its own — opened once, updated by later commits. The committed
 * report's record decides that a run would change nothing, as for adapters. A comment's re-patch is answered by
 * editing its acknowledgement; the behavioural check is the adapters' only (README, "Full fine-tunes").
 */
export async function runFinetune(context: JobContext, payload: FinetunePayload, jobSignal?: AbortSignal): Promise<PatchOutcome> {
  const { command } = payload;
  const reply = async (text: string) => {
    if (command) await context.forge.editComment({ repo: payload.repo, discussion: command.discussion, commentId: command.ackId, text });
  };
  const outcome = await patchFinetuneFolder(context, payload, reply, jobSignal);
  // A refusal has answered already, with what is wrong and what to do.
  if (outcome.outcome !== "refused") await reply(replyText(context, payload, outcome));
  return outcome;
}

/** What the command's acknowledgement becomes, for each outcome. */
function replyText(context: JobContext, payload: FinetunePayload, outcome: Exclude<PatchOutcome, { outcome: "refused" }>): string {
  const where = `the fine-tune in ${code(payload.folder)}`;
  switch (outcome.outcome) {
    case "committed":
      return `Done: ${outcome.created ? `opened pull request #${outcome.pr} (${context.forge.pullRequestUrl(payload.repo, outcome.pr)}) with` : "committed"} \`${outcome.commit.slice(0, 12)}\` — ${where} patched, ${outcome.projected} of ${outcome.modules} modules projected.`;
    case "unchanged":
      return `Nothing to do: pull request #${outcome.pr} already holds ${where} patched with the same selection from the same models.`;
    case "skipped":
      return `Skipped: ${escapeMarkdown(outcome.reason)}.`;
  }
}

async function patchFinetuneFolder(context: JobContext, payload: FinetunePayload, reply: (text: string) => Promise<void>, jobSignal?: AbortSignal): Promise<PatchOutcome> {
  const { repo, folder } = payload;
  const sha = payload.sha ?? (await context.forge.head(repo)).sha;
  const files = await context.forge.open({ repo, revision: sha });
  const known: { filesKey: string; config: RepoConfig | null } = { filesKey: "", config: null };
  try {
    const loaded = await loadRepoConfig(context.config, files, context.forge.repoConfigPath);
    // The scan posted the configuration's notice; nothing runs until it is fixed.
    if (!loaded.ok) return { outcome: "skipped", reason: `invalid ${context.forge.repoConfigPath}` };
    const { config } = loaded;
    known.config = config;
    if (!config.enabled) return { outcome: "skipped", reason: "disabled" };
    if (await context.memory.isStopped({ forge: context.forge.name, repo, folder })) return { outcome: "skipped", reason: "stopped" };
    const finetuned = await finetuneFileKeys(files, folder);
    known.filesKey = finetuned.filesKey;
    if (Object.keys(finetuned.files).length === 0) return { outcome: "skipped", reason: "no fine-tune in this folder" };
    const mine = (await context.forge.pullRequests(repo)).filter((pr) => pr.folder === folder);
    const open = mine.find((pr) => pr.status === "open" || pr.status === "draft") ?? null;
    // A command is someone asking: it is never "already covered".
    if (!open && !payload.command) {
      const covered = await alreadyCovered(context, repo, mine, files, folder, finetuned.files);
      if (covered) return { outcome: "skipped", reason: covered };
    }

    const deadline = repoDeadline(config.limits, jobSignal);
    const inputs = await openInputs({
      adapter: files,
      trained: "finetune",
      subfolder: folder,
      ...(config.pair ? { base: config.pair.base, aligned: config.pair.aligned } : {}),
      access: context.hub,
      allowModelTree: config.allowModelTree,
      mayRead: modelAccessCheck({ adapterRepo: repo, trustedModels: context.config.trustedModels, hub: context.hub }),
      hubOnly: true,
    }).catch((error: unknown) => {
      deadline.clear();
      throw error;
    });
    try {
      const record: FinetuneRecord = {
        finetuned: finetuned.files,
        base: await modelRecord(inputs.base),
        aligned: await modelRecord(inputs.aligned),
        selection: formatSelection(payload.selection ?? config.select),
        operator: FULL_OPERATOR_FORMULA,
        botVersion: TOOL.version,
      };
      if (open) {
        const prHead = await context.forge.open({ repo, revision: context.forge.pullRequestHead(repo, open.num) });
        const held = await committedFinetuneReport(prHead, folder).finally(() => prHead.close());
        if (sameRecord(held?.record, record)) return { outcome: "unchanged", pr: open.num, reason: "same record" };
      }
      const { limits } = config;
      const patched = await patchFullFinetune({
        finetuned: inputs.adapter,
        base: inputs.base,
        aligned: inputs.aligned,
        selection: payload.selection ?? config.select,
        executionProvider: context.executionProvider,
        limits: { maxModules: limits.maxModules, maxFetchBytes: limits.maxFetchGB * 1e9, maxCpuModuleElements: context.config.fullFinetunes.maxCpuModuleElements },
        record,
        signal: deadline.signal,
      });
      inputs.onClose(() => patched.release()); // the staged shards stay on disk until the commit is done
      for (const source of ["base", "aligned", "finetuned"] as const) context.metrics.bytesRead.inc({ source }, patched.report.bytesRead[source]);
      const card = cardContextOf(patched.report, inputs, folder, context.hub.hubUrl);
      const commit: FileToCommit[] = finetuneVariantFiles(patched, card).map((file) => ({ path: posix.join(variantFolderOf(folder), file.path), content: new Blob([...file.chunks]) }));
      return await publish(context, { repo, folder, main: files, open, record, report: patched.report, files: commit });
    } finally {
      deadline.clear();
      await inputs.close();
    }
  } catch (error) {
    if (!isUsersToFix(error)) throw error;
    // A model repo whose card names a base it has no pair for is most often a family's own release (the aligned
    // model, say), not a fine-tune to repair: left alone without a notice, unless its repo named a pair or someone asked.
    if (error.code === "no-pair" && !known.config?.pair && !payload.command) {
      return { outcome: "skipped", reason: `no base/aligned pair for this model (${error.message}); name one with pair: in ${context.forge.repoConfigPath} to have it patched` };
    }
    // Told to the command that asked, or in a notice posted once per fine-tune version and error.
    if (payload.command) {
      await reply(`I could not patch the fine-tune in ${code(folder)}:\n\n${failureText(context, error, known.config)}`);
      return { outcome: "refused", reason: error.message, code: error.code, notice: payload.command.discussion };
    }
    const notice = await postFailureNotice(context, { repo, folder, key: `${known.filesKey}:${error.code}`, error, config: known.config, subject: "fine-tune" });
    return { outcome: "refused", reason: error.message, code: error.code, notice };
  } finally {
    await files.close();
  }
}

/** Opens the pull request, or commits onto the open one; then describes it from what its head holds. */
async function publish(
  context: JobContext,
  params: {
    readonly repo: string;
    readonly folder: string;
    readonly main: PinnedRepo;
    readonly open: BotPullRequest | null;
    readonly record: FinetuneRecord;
    readonly report: FullFinetuneReport;
    readonly files: FileToCommit[];
  },
): Promise<PatchOutcome> {
  const { repo, folder, main, open, record, report } = params;
  const forge = context.forge;
  let num: number;
  let commit: string;
  if (open) {
    num = open.num;
    const title = plainLine(`Safe LoRA: ${record.selection} for the fine-tune in ${folder}`);
    ({ commit } = await pushWithRetry(context, { repo, pr: open, files: params.files, title, nothingToDo: async (head) => sameRecord((await committedFinetuneReport(head, folder))?.record, record) }));
  } else {
    ({ num, commit } = await forge.openPullRequest({
      repo,
      baseSha: main.sha,
      title: pullRequestTitle(folder),
      description: finetunePullRequestDescription({ folder, report, changes: [] }),
      files: params.files,
    }));
  }
  const head = await forge.open({ repo, revision: forge.pullRequestHead(repo, num) });
  try {
    const committed = (await committedFinetuneReport(head, folder)) ?? report;
    const description = finetunePullRequestDescription({ folder, report: committed, changes: await pullRequestChanges(head, main, [folder]) });
    if (description.trim() !== (open?.description ?? "").trim()) await forge.updateDescription({ repo, num, text: description });
  } finally {
    await head.close();
  }
  const { projectedCount, moduleCount } = report;
  await resolveNotices(context, {
    repo,
    folder,
    outcome: `Done: pull request #${num} holds a Safe LoRA variant of the fine-tune in ${code(folder)} (commit \`${commit.slice(0, 12)}\`, \`${record.selection}\`, ${projectedCount} of ${moduleCount} modules projected).`,
  });
  return { outcome: "committed", pr: num, commit, projected: projectedCount, modules: moduleCount, created: !open };
}

export const finetuneJob: JobKindDefinition<FinetunePayload> = {
  kind: "finetune",
  payload: FinetunePayload,
  run: (context, job) => {
    const { command } = job.payload;
    if (job.supersededBy !== null && command) return stepAside(onForge(context, job.forge), { repo: job.payload.repo, command });
    return runFinetune(onForge(context, job.forge), job.payload, job.signal);
  },
};
