import { z } from "zod";
import { commentCommandHelp } from "../commands/parse-comment.js";
import { cardLicense } from "../hub/card-data.js";
import { nonDefaultHubUrl } from "../hub/hub-access.js";
import { redactRepo, repoLogFields } from "./log-fields.js";
import { code, plainLine } from "../report/markdown.js";
import { posix } from "node:path";
import type { RepoConfig } from "../config/bot-config.js";
import { isUsersToFix, type SafeLoraErrorCode } from "../errors.js";
import type { BotPullRequest, FileToCommit, ForgeName, PinnedRepo } from "../forge/forge.js";
import { openInputs, type OpenedInputs } from "../pipeline/open-inputs.js";
import { patchAdapter, type PatchedAdapter } from "../pipeline/patch-adapter.js";
import { Operator, operatorFormula } from "../projection/operator.js";
import { REPORT_FILE, variantFiles } from "../pipeline/variant-files.js";
import { VARIANT_FOLDER, variantFolderOf } from "../report/variant-folder.js";
import { formatSelection, Selection } from "../projection/selection.js";
import { jobKey } from "../queue/job-key.js";
import { pullRequestDescription, pullRequestTitle, type FileChange } from "../report/pr-body.js";
import { withReadmeSection } from "../report/readme-section.js";
import { reproduceCommand } from "../report/reproduce-command.js";
import { sameRecord, type PatchRecord } from "../report/record.js";
import { SafeLoraReport } from "../report/schema.js";
import { renderModelCard, type ModelCardContext } from "../report/model-card.js";
import { TOOL } from "../version.js";
import { adapterFileKeys } from "./adapters.js";
import { repoDeadline } from "./repo-deadline.js";
import { modelRecord, pushWithRetry, readCommittedReport } from "./variant-commits.js";
import type { FullFinetuneReport } from "../report/full-finetune-schema.js";
import { measureVariant } from "./behaviour-check.js";
import { onForge, type JobContext } from "./context.js";
import type { JobKindDefinition } from "./job-kinds.js";
import { modelAccessCheck } from "./model-access.js";
import { failureText, postConfigNotice, postFailureNotice, resolveNotices } from "./notices.js";
import { describeProblem, loadRepoConfig } from "./repo-config.js";

/** The comment a re-patch answers: the acknowledgement to edit with the result. */
export const CommandRef = z.object({ discussion: z.number().int(), commentId: z.string(), ackId: z.string() });

export const PatchPayload = z.object({
  repo: z.string(),
  /** "." for the repo root. */
  folder: z.string(),
  /** The commit to read the adapter at; null: the head of main when the job runs. */
  sha: z.string().nullable(),
  /** A command's selection; null: the repo's configured one. */
  selection: Selection.nullable(),
  /** A command's operator; null: the repo's configured one. Absent from jobs queued before it existed. */
  operator: Operator.nullable().default(null),
  /** Set when a comment asked for it: the acknowledgement to edit with the result. */
  command: CommandRef.nullable(),
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
  return readCommittedReport(files, folder, SafeLoraReport);
}

/** Every variant report committed at a revision, for a pull request's description. */
async function committedReports(files: PinnedRepo): Promise<Array<{ folder: string; report: SafeLoraReport }>> {
  const suffix = `${VARIANT_FOLDER}/${REPORT_FILE}`;
  const variants = [];
  for (const path of files.paths().filter((p) => p === suffix || p.endsWith(`/${suffix}`)).sort()) {
    const folder = posix.dirname(posix.dirname(path));
    const report = await committedReport(files, folder);
    if (report) variants.push({ folder, report });
  }
  return variants;
}

/** What the patch would be made from: known before any weight is read. */
async function recordOf(inputs: OpenedInputs, adapter: Record<string, string>, selection: Selection, operator: Operator): Promise<PatchRecord> {
  return {
    adapter,
    base: await modelRecord(inputs.base),
    aligned: await modelRecord(inputs.aligned),
    selection: formatSelection(selection),
    // The paper's is the formula records always carried, so a variant made before the choice is not patched again.
    operator: operatorFormula(operator),
    botVersion: TOOL.version,
  };
}

/** What the variant's card says beyond the report: the aligned model for `base_model`, the licence, how to reproduce it. */
export function cardContextOf(report: SafeLoraReport | FullFinetuneReport, inputs: OpenedInputs, folder: string, hubUrl: string): ModelCardContext {
  return {
    alignedHubId: report.inputs.aligned.revision ? report.inputs.aligned.location : null,
    license: cardLicense(inputs.adapterCard),
    command: reproduceCommand(report, folder, { hubUrl: nonDefaultHubUrl(hubUrl) }),
  };
}

/** The files of the commit: the variant folder, and the root README section when configured. */
async function commitFiles(params: {
  readonly patched: PatchedAdapter;
  readonly inputs: OpenedInputs;
  /** The adapter folder. */
  readonly folder: string;
  readonly config: RepoConfig;
  /** The revision whose README.md gets the section: the pull request's head, or main for a new one. */
  readonly readmeFrom: PinnedRepo;
  /** The Hub the pair was read from. */
  readonly hubUrl: string;
}): Promise<FileToCommit[]> {
  const { patched, inputs, folder, config, readmeFrom, hubUrl } = params;
  const report = patched.report;
  const files: FileToCommit[] = variantFiles(patched, cardContextOf(report, inputs, folder, hubUrl)).map((file) => ({
    path: posix.join(variantFolderOf(folder), file.path),
    content: new Blob([...file.chunks]),
  }));
  if (config.readmeSection) {
    const readme = (await readmeFrom.exists("README.md")) ? await readmeFrom.readText("README.md") : null;
    files.push({ path: "README.md", content: new Blob([withReadmeSection(readme, folder, report)]) });
  }
  return files;
}

/** One run of a patch job: the repo pinned at the commit the adapter is read at, and who is told the result. */
interface PatchRun {
  readonly context: JobContext;
  readonly payload: PatchPayload;
  readonly files: PinnedRepo;
  /** Edits the acknowledgement of the command that asked (a push has none: nothing is said). */
  reply(text: string): Promise<void>;
  /** What a refusal's notice needs, known as the run goes: the adapter's files key, the repo's configuration. */
  readonly known: { filesKey: string; config: RepoConfig | null };
}

/** What decide() found worth patching. */
interface PatchPlan {
  readonly config: RepoConfig;
  readonly selection: Selection;
  readonly operator: Operator;
  /** The adapter's files by path -> content key. */
  readonly adapter: Record<string, string>;
  /** The folder the pull request covers: the adapter's, or "*" for one per repo. */
  readonly prFolder: string;
  /** The bot's open pull request for `prFolder`, which a patch updates; null: a patch opens one. */
  readonly open: BotPullRequest | null;
}

/** The plan's inputs, opened: the pair resolved and the record of what a patch would be made from. */
interface OpenedPlan extends PatchPlan {
  readonly inputs: OpenedInputs;
  readonly record: PatchRecord;
  /** The open pull request's head (null without one). */
  readonly prHead: PinnedRepo | null;
  /** Aborts on the job's own signal or the repo's time limit. */
  readonly signal: AbortSignal;
}

/**
 * One adapter folder: patch it and publish the variant as a pull request — at most one open bot pull request
 * per folder (or per repo), updated by new commits, never replaced. The committed report's record decides
 * that a request would change nothing; the same check makes a retry after a crash find its own commit.
 * In three steps: decide whether there is anything to do, compute the variant, publish it.
 */
export async function runPatch(context: JobContext, payload: PatchPayload, signal?: AbortSignal): Promise<PatchOutcome> {
  const { repo, command } = payload;
  const sha = payload.sha ?? (await context.forge.head(repo)).sha;
  const run: PatchRun = {
    context,
    payload,
    files: await context.forge.open({ repo, revision: sha }),
    reply: async (text) => {
      if (command) await context.forge.editComment({ repo, discussion: command.discussion, commentId: command.ackId, text });
    },
    known: { filesKey: "", config: null },
  };
  try {
    const plan = await decide(run);
    if ("outcome" in plan) return plan;
    return await withInputs(run, plan, signal, async (opened) => (await unchanged(run, opened)) ?? publish(run, opened, await compute(run, opened)));
  } catch (error) {
    return refuse(run, error);
  } finally {
    await run.files.close();
  }
}

/** Whether to patch at all, from what the repo holds before any model is opened; a skip is answered to a command. */
async function decide(run: PatchRun): Promise<PatchPlan | PatchOutcome> {
  const { context, payload, files, reply } = run;
  const { repo, folder } = payload;
  const loaded = await loadRepoConfig(context.config, files, context.forge.repoConfigPath);
  if (!loaded.ok) {
    const notice = await postConfigNotice(context, { repo, problem: loaded.problem, fileKey: loaded.fileKey });
    await reply(`I cannot act until \`${context.forge.repoConfigPath}\` is fixed: ${describeProblem(loaded.problem, context.forge.repoConfigPath)}.`);
    return { outcome: "skipped", reason: `invalid ${context.forge.repoConfigPath}`, ...(notice !== null ? { notice } : {}) };
  }
  const { config } = loaded;
  // A failure's advice depends on it from here on (e.g. whose limit was reached).
  run.known.config = config;
  if (!config.enabled) {
    await reply(`Safe LoRA is turned off for this repo (\`enabled: false\` in \`${context.forge.repoConfigPath}\`).`);
    return { outcome: "skipped", reason: "disabled" };
  }
  if (await context.memory.isStopped({ forge: context.forge.name, repo, folder })) {
    await reply(`I stopped covering ${code(folder)} as asked; comment \`@${context.forge.bot.name} start\` to undo that.`);
    return { outcome: "skipped", reason: "stopped" };
  }
  const adapter = await adapterFileKeys(files, folder);
  run.known.filesKey = adapter.filesKey;
  if (Object.keys(adapter.files).length === 0) {
    await reply(`There is no adapter in ${code(folder)} at \`${files.sha.slice(0, 12)}\`.`);
    return { outcome: "skipped", reason: "no adapter in this folder" };
  }
  const prFolder = config.pullRequests === "per-repo" ? "*" : folder;
  const mine = (await context.forge.pullRequests(repo)).filter((pr) => pr.folder === prFolder);
  const open = mine.find((pr) => pr.status === "open" || pr.status === "draft") ?? null;
  // A command is someone asking: it is never "already covered".
  if (!open && !payload.command) {
    const covered = await alreadyCovered(context, { repo, mine, main: files, folder, adapter: adapter.files });
    if (covered) return { outcome: "skipped", reason: covered };
  }
  return { config, selection: payload.selection ?? config.select, operator: payload.operator ?? config.operator, adapter: adapter.files, prFolder, open };
}

/**
 * Opens the plan's inputs under the repo's own time limit and runs `step` with them. The job handler (run-job.ts)
 * enforces the operator's maxRunMinutes; a repo's own (lower) value is known only from the plan on.
 */
async function withInputs<T>(run: PatchRun, plan: PatchPlan, jobSignal: AbortSignal | undefined, step: (opened: OpenedPlan) => Promise<T>): Promise<T> {
  const { context, payload, files } = run;
  const deadline = repoDeadline(plan.config.limits, jobSignal);
  try {
    const inputs = await openInputs({
      adapter: files,
      subfolder: payload.folder,
      ...(plan.config.pair ? { base: plan.config.pair.base, aligned: plan.config.pair.aligned } : {}),
      access: context.hub,
      allowModelTree: plan.config.allowModelTree,
      mayRead: modelAccessCheck({ adapterRepo: payload.repo, trustedModels: context.config.trustedModels, hub: context.hub }),
      hubOnly: true,
    });
    try {
      const record = await recordOf(inputs, plan.adapter, plan.selection, plan.operator);
      const prHead = plan.open ? await context.forge.open({ repo: payload.repo, revision: context.forge.pullRequestHead(payload.repo, plan.open.num) }) : null;
      return await step({ ...plan, inputs, record, prHead, signal: deadline.signal });
    } finally {
      await inputs.close();
    }
  } finally {
    deadline.clear();
  }
}

/** The open pull request already holds this very patch (same record): refresh its description and say so. */
async function unchanged(run: PatchRun, plan: OpenedPlan): Promise<PatchOutcome | null> {
  const { context, payload, files } = run;
  const { open, prHead, record } = plan;
  if (!open || !prHead || !sameRecord((await committedReport(prHead, payload.folder))?.record, record)) return null;
  const { repo, folder } = payload;
  await refreshDescription(context, { repo, pr: open, head: prHead, prFolder: plan.prFolder, main: files });
  // A run that committed the variant but stopped before the behavioural check (a crash, a restart) finishes it here.
  const report = await committedReport(prHead, folder);
  if (report && !report.behaviour && plan.config.behaviour.endpoint !== null) await checkBehaviour(run, plan, { num: open.num, commit: prHead.sha, report });
  await run.reply(`Nothing to do: this pull request already holds ${code(folder)} patched with \`${record.selection}\` from the same adapter and models.`);
  await resolveNotices(context, { repo, folder, outcome: `Pull request #${open.num} now holds a Safe LoRA variant of ${code(folder)} (\`${record.selection}\`).` });
  return { outcome: "unchanged", pr: open.num, reason: "same record" };
}

/** The variant: every module's cosine, the projection where selected, the report. */
async function compute(run: PatchRun, plan: OpenedPlan): Promise<PatchedAdapter> {
  const { context, files } = run;
  const { repo } = run.payload;
  const { limits } = plan.config;
  const patched = await patchAdapter({
    ...plan.inputs,
    selection: plan.selection,
    operator: plan.operator,
    executionProvider: context.executionProvider,
    cache: context.cache,
    warmPairs: context.warmPairs,
    record: plan.record,
    signal: plan.signal,
    limits: { maxModules: limits.maxModules, maxRank: limits.maxRank, maxFetchBytes: limits.maxFetchGB * 1e9, maxCacheBytes: limits.maxDiskGB * 1e9 },
    onNotice: (message) => context.log.warn(repoLogFields(repo, files.private), redactRepo(message, repo, files.private)),
  });
  plan.inputs.onClose(() => patched.release()); // its staged weights stay on disk until the commit is done
  for (const source of ["base", "aligned", "adapter"] as const) context.metrics.bytesRead.inc({ source }, patched.report.bytesRead[source]);
  return patched;
}

/** Commits the variant — a new pull request, or a commit on the open one — then describes it and says what was done. */
async function publish(run: PatchRun, plan: OpenedPlan, patched: PatchedAdapter): Promise<PatchOutcome> {
  const { context, files } = run;
  const { repo, folder } = run.payload;
  const { open, prFolder, record } = plan;
  const forge = context.forge;
  let num: number;
  let commit: string;
  if (open) {
    num = open.num;
    const title = plainLine(`Safe LoRA: ${formatSelection(plan.selection)} for ${folder}`);
    const changed = await commitFiles({ patched, inputs: plan.inputs, folder, config: plan.config, readmeFrom: plan.prHead!, hubUrl: context.hub.hubUrl });
    ({ commit } = await pushWithRetry(context, { repo, pr: open, files: changed, title, nothingToDo: async (head) => sameRecord((await committedReport(head, folder))?.record, record) }));
  } else {
    ({ num, commit } = await forge.openPullRequest({
      repo,
      baseSha: files.sha,
      title: pullRequestTitle(prFolder),
      description: pullRequestDescription({
        folder: prFolder,
        commandHelp: commentCommandHelp(forge.bot.name),
        tryVariant: (variant) => forge.tryVariant({ repo, num: null, ...variant }),
        variants: [{ folder, report: patched.report }],
        changes: [],
        behaviourPending: plan.config.behaviour.endpoint,
      }),
      files: await commitFiles({ patched, inputs: plan.inputs, folder, config: plan.config, readmeFrom: files, hubUrl: context.hub.hubUrl }),
    }));
  }
  const head = await forge.open({ repo, revision: forge.pullRequestHead(repo, num) });
  await refreshDescription(context, { repo, pr: { num, description: open?.description ?? "" }, head, prFolder, main: files, behaviourPending: plan.config.behaviour.endpoint });
  // The variant is published first: the endpoint loads it from the pull request's commit, and a failed check takes nothing away.
  await checkBehaviour(run, plan, { num, commit, report: patched.report });
  const { projectedCount, moduleCount } = patched.report;
  const where = open ? "committed" : `opened pull request #${num} (${forge.pullRequestUrl(repo, num)}) with`;
  await run.reply(`Done: ${where} \`${commit.slice(0, 12)}\` — ${code(folder)} patched with \`${record.selection}\`, ${projectedCount} of ${moduleCount} modules projected.`);
  await resolveNotices(context, {
    repo,
    folder,
    outcome: `Done: pull request #${num} holds a Safe LoRA variant of ${code(folder)} (commit \`${commit.slice(0, 12)}\`, \`${record.selection}\`, ${projectedCount} of ${moduleCount} modules projected).`,
  });
  return { outcome: "committed", pr: num, commit, projected: projectedCount, modules: moduleCount, created: !open };
}

/**
 * The behavioural check of the variant committed at `commit`, when the repo has an endpoint: its evidence (figures, or
 * why there are none) is committed beside the variant — the report and its card — and the description shows it.
 * Nothing is committed when the pull request has moved on to another variant meanwhile: the figures would be stale.
 */
async function checkBehaviour(run: PatchRun, plan: OpenedPlan, variant: { num: number; commit: string; report: SafeLoraReport }): Promise<void> {
  const { context, files } = run;
  const { repo, folder } = run.payload;
  const evidence = await measureVariant(context, {
    repo,
    isPrivate: files.private,
    folder,
    config: plan.config,
    originalSha: files.sha,
    patchedCommit: variant.commit,
    alignedModel: variant.report.inputs.aligned.location,
    signal: plan.signal,
  });
  if (!evidence) return;
  const head = await context.forge.open({ repo, revision: context.forge.pullRequestHead(repo, variant.num) });
  if (!sameRecord((await committedReport(head, folder))?.record, plan.record)) return;
  const report: SafeLoraReport = { ...variant.report, behaviour: evidence };
  const where = variantFolderOf(folder);
  await pushWithRetry(context, {
    repo,
    pr: { num: variant.num },
    files: [
      { path: `${where}/README.md`, content: new Blob([renderModelCard(report, cardContextOf(report, plan.inputs, folder, context.hub.hubUrl))]) },
      { path: `${where}/${REPORT_FILE}`, content: new Blob([`${JSON.stringify(report, null, 2)}\n`]) },
    ],
    title: plainLine(`Safe LoRA: behavioural check of ${folder} (${evidence.status === "measured" ? "measured" : "could not run"})`),
    // Done when the evidence landed, and not to be committed onto another variant that got there first.
    nothingToDo: async (moved) => {
      const committed = await committedReport(moved, folder);
      return !sameRecord(committed?.record, plan.record) || JSON.stringify(committed?.behaviour) === JSON.stringify(evidence);
    },
  });
  const description = (await context.forge.pullRequests(repo)).find((pr) => pr.num === variant.num)?.description ?? "";
  const described = await context.forge.open({ repo, revision: context.forge.pullRequestHead(repo, variant.num) });
  await refreshDescription(context, { repo, pr: { num: variant.num, description }, head: described, prFolder: plan.prFolder, main: files });
}

/**
 * A failure that is the user's to fix becomes a refusal: told to the command that asked, or in a notice posted
 * once per adapter version and error. Anything else is thrown, for the runner to retry or fail.
 */
async function refuse(run: PatchRun, error: unknown): Promise<PatchOutcome> {
  if (!isUsersToFix(error)) throw error;
  const { context, payload } = run;
  const { repo, folder, command } = payload;
  let notice: number | null;
  if (command) {
    await run.reply(`I could not patch ${code(folder)}:\n\n${failureText(context, error, run.known.config)}`);
    notice = command.discussion;
  } else notice = await postFailureNotice(context, { repo, folder, key: `${run.known.filesKey}:${error.code}`, error, config: run.known.config });
  return { outcome: "refused", reason: error.message, code: error.code, notice };
}

/** A reason not to open a pull request for these adapter files again, or null. */
async function alreadyCovered(
  context: JobContext,
  params: {
    readonly repo: string;
    /** The bot's pull requests for the folder. */
    readonly mine: readonly BotPullRequest[];
    /** The repo at the commit the adapter is read at. */
    readonly main: PinnedRepo;
    readonly folder: string;
    /** The adapter's files by path -> content key. */
    readonly adapter: Record<string, string>;
  },
): Promise<string | null> {
  const { repo, mine, main, folder, adapter } = params;
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

/**
 * What the pull request adds or changes against `main`, by content key. Only the paths the bot writes (the variant
 * folders and the root README) are compared: any other difference is `main` having moved on, not this pull request.
 */
export async function pullRequestChanges(head: PinnedRepo, main: PinnedRepo, folders: readonly string[]): Promise<FileChange[]> {
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
async function refreshDescription(
  context: JobContext,
  params: {
    readonly repo: string;
    /** The pull request and its description as it stands. */
    readonly pr: { readonly num: number; readonly description: string };
    /** The pull request's head, whose committed reports it describes. */
    readonly head: PinnedRepo;
    /** The folder it covers, "*" for one per repo. */
    readonly prFolder: string;
    /** What it is compared with: the default branch at the commit the adapter was read at. */
    readonly main: PinnedRepo;
    /** The endpoint whose behavioural check is about to run, for a line saying its figures are coming. */
    readonly behaviourPending?: string | null;
  },
): Promise<void> {
  const { repo, pr, head, prFolder, main } = params;
  const variants = await committedReports(head);
  if (variants.length === 0) return;
  const changes = await pullRequestChanges(head, main, variants.map((variant) => variant.folder));
  const description = pullRequestDescription({
    folder: prFolder,
    commandHelp: commentCommandHelp(context.forge.bot.name),
    tryVariant: (variant) => context.forge.tryVariant({ repo, num: pr.num, ...variant }),
    variants,
    changes,
    behaviourPending: params.behaviourPending ?? null,
  });
  if (description.trim() !== pr.description.trim()) await context.forge.updateDescription({ repo, num: pr.num, text: description });
}

/**
 * The supersedes group of a folder's re-patches: a re-patch asked for while an older one still waits makes the
 * older one step aside (the queue tells it, `supersededBy`), so that only the newest request runs.
 */
export function repatchGroup(params: { forge: ForgeName; repo: string; folder: string }): string {
  return jobKey("repatch", params.forge, params.repo, params.folder);
}

/** A re-patch that a newer one replaced before it started: its acknowledgement says so, and nothing runs. */
export async function stepAside(context: JobContext, payload: { readonly repo: string; readonly command: NonNullable<PatchPayload["command"]> }): Promise<PatchOutcome> {
  const { repo, command } = payload;
  await context.forge.editComment({
    repo,
    discussion: command.discussion,
    commentId: command.ackId,
    text: "Skipped: a newer re-patch request for this folder came in before I started this one, so I am running that one instead.",
  });
  return { outcome: "skipped", reason: "superseded by a newer re-patch" };
}

export const patchJob: JobKindDefinition<PatchPayload> = {
  kind: "patch",
  payload: PatchPayload,
  run: (context, job) => {
    const { command } = job.payload;
    if (job.supersededBy !== null && command) return stepAside(onForge(context, job.forge), { ...job.payload, command });
    return runPatch(onForge(context, job.forge), job.payload, job.signal);
  },
};
