import { z } from "zod";
import { cardLicense } from "../hub/card-data.js";
import { redactRepo, repoLogFields } from "./log-fields.js";
import { code, plainLine } from "../report/markdown.js";
import { posix } from "node:path";
import type { RepoConfig } from "../config/bot-config.js";
import { isUsersToFix, SafeLoraError, type SafeLoraErrorCode } from "../errors.js";
import type { BotPullRequest, FileToCommit, ForgeName, PinnedRepo } from "../forge/forge.js";
import { openInputs, type OpenedInputs } from "../pipeline/open-inputs.js";
import { OPERATOR_FORMULA, patchAdapter, type PatchedAdapter } from "../pipeline/patch-adapter.js";
import { REPORT_FILE, variantFiles } from "../pipeline/variant-files.js";
import { VARIANT_FOLDER, variantFolderOf } from "../report/variant-folder.js";
import { formatSelection, Selection } from "../projection/selection.js";
import { jobKey } from "../queue/job-key.js";
import { pullRequestDescription, pullRequestTitle, type FileChange } from "../report/pr-body.js";
import { withReadmeSection } from "../report/readme-section.js";
import { reproduceCommand } from "../report/reproduce-command.js";
import { sameRecord, type PatchRecord } from "../report/record.js";
import { SafeLoraReport } from "../report/schema.js";
import { TOOL } from "../version.js";
import { adapterFileKeys } from "./adapters.js";
import { onForge, type JobContext } from "./context.js";
import type { JobKindDefinition } from "./job-kinds.js";
import { modelAccessCheck } from "./model-access.js";
import { failureText, postConfigNotice, postFailureNotice, resolveNotices } from "./notices.js";
import { describeProblem, loadRepoConfig } from "./repo-config.js";

export const PatchPayload = z.object({
  repo: z.string(),
  /** "." for the repo root. */
  folder: z.string(),
  /** The commit to read the adapter at; null: the head of main when the job runs. */
  sha: z.string().nullable(),
  /** A command's selection; null: the repo's configured one. */
  selection: Selection.nullable(),
  /** Set when a comment asked for it: the acknowledgement to edit with the result. */
  command: z.object({ discussion: z.number().int(), commentId: z.string(), ackId: z.string() }).nullable(),
});
export type PatchPayload = z.infer<typeof PatchPayload>;

/** Per adapter version and configuration: a README-only commit makes no new patch job. */
export function patchKey(params: {
  /** The forge the repo lives on. */
  forge: ForgeName;
  repo: string;
  /** The adapter folder, "." for the root. */
  folder: string;
  /** The content keys of the adapter's files (adapterFileKeys). */
  filesKey: string;
  /** What in the repo's configuration changes a patch (scan-job's configKey). */
  configKey: string;
}): string {
  return jobKey("patch", params.forge, params.repo, params.folder, params.filesKey, params.configKey);
}

/** One re-patch per comment that asked for it, however often the command job runs. */
export function commandPatchKey(params: {
  /** The forge the repo lives on. */
  forge: ForgeName;
  repo: string;
  /** The adapter folder, "." for the root. */
  folder: string;
  /** The comment that asked for the re-patch. */
  commentId: string;
}): string {
  return jobKey("patch", params.forge, params.repo, params.folder, "comment", params.commentId);
}

export type PatchOutcome =
  | { outcome: "committed"; pr: number; commit: string; projected: number; modules: number; created: boolean }
  | { outcome: "unchanged"; pr: number | null; reason: string }
  | { outcome: "skipped"; reason: string; notice?: number }
  /** `notice`: the discussion or pull request where the refusal was explained, or the command's. */
  | { outcome: "refused"; reason: string; code: SafeLoraErrorCode; notice: number | null };

/** The report committed for `folder` at a revision, or null when there is none (or it is unreadable). */
export async function committedReport(files: PinnedRepo, folder: string): Promise<SafeLoraReport | null> {
  const path = `${variantFolderOf(folder)}/${REPORT_FILE}`;
  if (!(await files.exists(path))) return null;
  try {
    const parsed = SafeLoraReport.safeParse(JSON.parse(await files.readText(path)));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** Every variant report committed at a revision, for a pull request's description. */
async function committedReports(files: PinnedRepo): Promise<Array<{ folder: string; report: SafeLoraReport }>> {
  const suffix = `${VARIANT_FOLDER}/${REPORT_FILE}`;
  const variants = [];
  for (const path of files.paths().filter((p) => p === suffix || p.endsWith(`/${suffix}`)).sort()) {
    const folder = path === suffix ? "." : path.slice(0, -suffix.length - 1);
    const report = await committedReport(files, folder);
    if (report) variants.push({ folder, report });
  }
  return variants;
}

/** What the patch would be made from: known before any weight is read. */
async function recordOf(inputs: OpenedInputs, adapter: Record<string, string>, selection: Selection): Promise<PatchRecord> {
  const pair = async (input: OpenedInputs["base"]) => {
    const weights: string[] = [];
    for (const path of (input.files as PinnedRepo).paths?.() ?? []) {
      if (!/\.safetensors(\.index\.json)?$/.test(path)) continue;
      const key = await input.files.contentKey(path);
      if (key) weights.push(key);
    }
    return { id: input.location ?? input.files.description, revision: input.revision ?? "local", weights: weights.sort() };
  };
  return {
    adapter,
    base: await pair(inputs.base),
    aligned: await pair(inputs.aligned),
    selection: formatSelection(selection),
    operator: OPERATOR_FORMULA,
    botVersion: TOOL.version,
  };
}

/** The files of the commit: the variant folder, and the root README section when configured. */
async function commitFiles(patched: PatchedAdapter, inputs: OpenedInputs, folder: string, config: RepoConfig, readmeFrom: PinnedRepo, hubUrl: string): Promise<FileToCommit[]> {
  const report = patched.report;
  const command = reproduceCommand(report, folder, { hubUrl });
  const license = cardLicense(inputs.adapterCard);
  const files: FileToCommit[] = variantFiles(patched, { alignedHubId: report.inputs.aligned.revision ? report.inputs.aligned.location : null, license, command }).map(
    (file) => ({ path: posix.join(variantFolderOf(folder), file.path), content: new Blob([...file.chunks]) }),
  );
  if (config.readmeSection) {
    const readme = (await readmeFrom.exists("README.md")) ? await readmeFrom.readText("README.md") : null;
    files.push({ path: "README.md", content: new Blob([withReadmeSection(readme, folder, report)]) });
  }
  return files;
}

/**
 * One adapter folder: patch it and publish the variant as a pull request — at most one open bot pull request
 * per folder (or per repo), updated by new commits, never replaced. The committed report's record decides
 * that a request would change nothing; the same check makes a retry after a crash find its own commit.
 */
export async function runPatch(context: JobContext, payload: PatchPayload, signal?: AbortSignal): Promise<PatchOutcome> {
  const { repo, folder, command } = payload;
  const reply = async (text: string) => {
    if (command) await context.forge.editComment({ repo, discussion: command.discussion, commentId: command.ackId, text });
  };
  const sha = payload.sha ?? (await context.forge.head(repo)).sha;
  const files = await context.forge.open({ repo, revision: sha });
  let filesKey = "";
  // Known once safe-lora.yaml is read: a failure's advice depends on it (e.g. whose limit was reached).
  let repoConfig: RepoConfig | null = null;
  try {
    const loaded = await loadRepoConfig(context.config, files);
    if (!loaded.ok) {
      const notice = await postConfigNotice(context, repo, loaded.problem, loaded.fileKey);
      await reply(`I cannot act until \`safe-lora.yaml\` is fixed: ${describeProblem(loaded.problem)}.`);
      return { outcome: "skipped", reason: "invalid safe-lora.yaml", ...(notice !== null ? { notice } : {}) };
    }
    const { config } = loaded;
    repoConfig = config;
    if (!config.enabled) {
      await reply("Safe LoRA is turned off for this repo (`enabled: false` in `safe-lora.yaml`).");
      return { outcome: "skipped", reason: "disabled" };
    }
    if (context.state.isStopped(repo, folder)) {
      await reply(`I stopped covering ${code(folder)} as asked; comment \`@${context.forge.bot.name} start\` to undo that.`);
      return { outcome: "skipped", reason: "stopped" };
    }
    const adapterKeys = await adapterFileKeys(files, folder);
    filesKey = adapterKeys.filesKey;
    if (Object.keys(adapterKeys.files).length === 0) {
      await reply(`There is no adapter in ${code(folder)} at \`${sha.slice(0, 12)}\`.`);
      return { outcome: "skipped", reason: "no adapter in this folder" };
    }

    const prFolder = config.pullRequests === "per-repo" ? "*" : folder;
    const mine = (await context.forge.pullRequests(repo)).filter((pr) => pr.folder === prFolder);
    const open = mine.find((pr) => pr.status === "open" || pr.status === "draft");
    if (!open && !command) {
      const covered = await alreadyCovered(context, repo, mine, files, folder, adapterKeys.files);
      if (covered) return { outcome: "skipped", reason: covered };
    }

    const selection = payload.selection ?? config.select;
    // The worker enforces the operator's maxRunMinutes; a repo's own (lower) value is known only from here on.
    const repoDeadline = new AbortController();
    const deadline = setTimeout(
      () =>
        repoDeadline.abort(
          new SafeLoraError(`the job took longer than the limit of ${config.limits.maxRunMinutes} minutes (limits.maxRunMinutes)`, "limit-exceeded", {
            fix: { kind: "raise-limit", limit: "maxRunMinutes" },
          }),
        ),
      config.limits.maxRunMinutes * 60_000,
    );
    const jobSignal = signal ? AbortSignal.any([signal, repoDeadline.signal]) : repoDeadline.signal;
    // Never what keeps a stopping process alive; cleared on every way out, a refusal while opening included.
    deadline.unref();
    const inputs = await openInputs({
      adapter: files,
      subfolder: folder === "." ? "" : folder,
      ...(config.pair ? { base: config.pair.base, aligned: config.pair.aligned } : {}),
      access: context.hub,
      allowModelTree: config.allowModelTree,
      mayRead: modelAccessCheck({ adapterRepo: repo, trustedModels: context.config.trustedModels, hub: context.hub }),
      hubOnly: true,
    }).catch((error: unknown) => {
      clearTimeout(deadline);
      throw error;
    });
    try {
      const record = await recordOf(inputs, adapterKeys.files, selection);
      const prHead = open ? await context.forge.open({ repo, revision: context.forge.pullRequestHead(repo, open.num) }) : null;
      if (open && prHead && sameRecord((await committedReport(prHead, folder))?.record, record)) {
        await refreshDescription(context, repo, open, prHead, prFolder, files);
        await reply(`Nothing to do: this pull request already holds ${code(folder)} patched with \`${record.selection}\` from the same adapter and models.`);
        await resolveNotices(context, repo, folder, `Pull request #${open.num} now holds a Safe LoRA variant of ${code(folder)} (\`${record.selection}\`).`);
        return { outcome: "unchanged", pr: open.num, reason: "same record" };
      }

      const patched = await patchAdapter({
        ...inputs,
        selection,
        executionProvider: context.executionProvider,
        cache: context.cache,
        record,
        signal: jobSignal,
        limits: { maxModules: config.limits.maxModules, maxRank: config.limits.maxRank, maxFetchBytes: config.limits.maxFetchGB * 1e9, maxCacheBytes: config.limits.maxDiskGB * 1e9 },
        onNotice: (message) => context.log.warn(repoLogFields(repo, files.private), redactRepo(message, repo, files.private)),
      });
      for (const source of ["base", "aligned", "adapter"] as const) context.metrics.bytesRead.inc({ source }, patched.report.bytesRead[source]);
      const title = open ? plainLine(`Safe LoRA: ${formatSelection(selection)} for ${folder}`) : pullRequestTitle(prFolder);
      let num: number;
      let commit: string;
      if (open) {
        num = open.num;
        ({ commit } = await pushWithRetry(context, repo, open, folder, record, await commitFiles(patched, inputs, folder, config, prHead!, context.hub.hubUrl), title));
      } else {
        ({ num, commit } = await context.forge.openPullRequest({
          repo,
          baseSha: sha,
          title,
          description: pullRequestDescription({ folder: prFolder, botName: context.forge.bot.name, tryVariant: (variant) => context.forge.tryVariant({ repo, num: null, ...variant }), variants: [{ folder, report: patched.report }], changes: [] }),
          files: await commitFiles(patched, inputs, folder, config, files, context.hub.hubUrl),
        }));
      }
      const head = await context.forge.open({ repo, revision: context.forge.pullRequestHead(repo, num) });
      await refreshDescription(context, repo, { num, description: open?.description ?? "" }, head, prFolder, files);
      const { projectedCount, moduleCount } = patched.report;
      const where = open ? "committed" : `opened pull request #${num} (${context.forge.pullRequestUrl(repo, num)}) with`;
      await reply(`Done: ${where} \`${commit.slice(0, 12)}\` — ${code(folder)} patched with \`${record.selection}\`, ${projectedCount} of ${moduleCount} modules projected.`);
      await resolveNotices(
        context,
        repo,
        folder,
        `Done: pull request #${num} holds a Safe LoRA variant of ${code(folder)} (commit \`${commit.slice(0, 12)}\`, \`${record.selection}\`, ${projectedCount} of ${moduleCount} modules projected).`,
      );
      return { outcome: "committed", pr: num, commit, projected: projectedCount, modules: moduleCount, created: !open };
    } finally {
      clearTimeout(deadline);
      await inputs.close();
    }
  } catch (error) {
    if (!isUsersToFix(error)) throw error;
    let notice: number | null;
    if (command) {
      await reply(`I could not patch ${code(folder)}:\n\n${failureText(context, error, repoConfig)}`);
      notice = command.discussion;
    } else notice = await postFailureNotice(context, repo, folder, `${filesKey}:${error.code}`, error, repoConfig);
    return { outcome: "refused", reason: error.message, code: error.code, notice };
  } finally {
    await files.close();
  }
}

/** A reason not to open a pull request for these adapter files again, or null. */
async function alreadyCovered(
  context: JobContext,
  repo: string,
  mine: BotPullRequest[],
  main: PinnedRepo,
  folder: string,
  adapter: Record<string, string>,
): Promise<string | null> {
  const sameAdapter = (report: SafeLoraReport | null) => report?.record !== undefined && JSON.stringify(Object.entries(report.record.adapter).sort()) === JSON.stringify(Object.entries(adapter).sort());
  if (sameAdapter(await committedReport(main, folder))) return "a variant of these adapter files is already on main";
  for (const pr of mine.filter((p) => p.status === "closed" || p.status === "merged")) {
    const head = await context.forge.open({ repo, revision: context.forge.pullRequestHead(repo, pr.num) }).catch(() => null);
    if (head && sameAdapter(await committedReport(head, folder))) {
      return pr.status === "closed" ? `pull request #${pr.num} for these adapter files was closed; not reopening it` : `pull request #${pr.num} was merged`;
    }
  }
  return null;
}

/** Commits to the pull request's head; on a stale head (412) looks again: maybe our commit is already there. */
async function pushWithRetry(context: JobContext, repo: string, pr: BotPullRequest, folder: string, record: PatchRecord, files: FileToCommit[], title: string) {
  for (let attempt = 1; ; attempt++) {
    const head = await context.forge.open({ repo, revision: context.forge.pullRequestHead(repo, pr.num) });
    if (attempt > 1 && sameRecord((await committedReport(head, folder))?.record, record)) return { commit: head.sha };
    const result = await context.forge.pushToPullRequest({ repo, num: pr.num, parent: head.sha, title, files });
    if (result !== "stale") return result;
    if (attempt >= 5) throw new SafeLoraError(`${repo}: pull request #${pr.num} kept moving while committing; will retry`, "hub-unavailable");
  }
}

/**
 * What the pull request adds or changes against `main`, by content key. Only the paths the bot writes (the variant
 * folders and the root README) are compared: any other difference is `main` having moved on, not this pull request.
 */
async function pullRequestChanges(head: PinnedRepo, main: PinnedRepo, folders: readonly string[]): Promise<FileChange[]> {
  const written = (path: string) => path === "README.md" || folders.some((folder) => path.startsWith(`${variantFolderOf(folder)}/`));
  const changes: FileChange[] = [];
  for (const path of head.paths().filter(written).sort()) {
    if (!(await main.exists(path))) changes.push({ path, change: "added" });
    else {
      const before = await main.contentKey(path);
      if (before === null || before !== (await head.contentKey(path))) changes.push({ path, change: "changed" });
    }
  }
  return changes;
}

/** Rewrites the description from the reports committed at the pull request's head, when it changed. */
async function refreshDescription(context: JobContext, repo: string, pr: { num: number; description: string }, head: PinnedRepo, prFolder: string, main: PinnedRepo): Promise<void> {
  const variants = await committedReports(head);
  if (variants.length === 0) return;
  const changes = await pullRequestChanges(head, main, variants.map((variant) => variant.folder));
  const description = pullRequestDescription({ folder: prFolder, botName: context.forge.bot.name, tryVariant: (variant) => context.forge.tryVariant({ repo, num: pr.num, ...variant }), variants, changes });
  if (description.trim() !== pr.description.trim()) await context.forge.updateDescription({ repo, num: pr.num, text: description });
}

export const patchJob: JobKindDefinition<PatchPayload> = {
  kind: "patch",
  payload: PatchPayload,
  run: (context, job) => runPatch(onForge(context, job.forge), job.payload, job.signal),
};
