import { code, codeBlock, linkPath, plainLine, tableCell } from "./markdown.js";
import { variantFolderOf } from "./variant-folder.js";
import { behaviourPendingLine, behaviourPullRequestSection } from "./behaviour-section.js";
import { bytesReadText, givenUp, majorityWarning, modelTreeWarning, resolvedByWords } from "./headline.js";
import { pullRequestMarker, type TryVariant } from "../forge/forge.js";
import type { SafeLoraReport } from "./schema.js";

export interface PullRequestContext {
  /** The folder this pull request covers ("." for the root, "*" for a per-repo pull request). */
  readonly folder: string;
  /** The help of the bot's comment commands (Markdown), shown folded under the description. */
  readonly commandHelp: string;
  /**
   * How to load a variant from this pull request, and once merged: the forge's words (its ref names and
   * libraries), for the variant's folder in the repo and the aligned model it was made for.
   */
  readonly tryVariant: (variant: { readonly subfolder: string; readonly aligned: string }) => TryVariant;
  /** Each covered adapter folder with the report committed for it. */
  readonly variants: ReadonlyArray<{ folder: string; report: SafeLoraReport }>;
  /** Every file the pull request adds or changes against the branch it targets, as its commits left them. */
  readonly changes: ReadonlyArray<FileChange>;
  /** The inference endpoint whose behavioural check is still to report, by name; null or absent: none is. */
  readonly behaviourPending?: string | null;
}

export interface FileChange {
  readonly path: string;
  readonly change: "added" | "changed";
}

export function pullRequestTitle(folder: string): string {
  return folder === "." || folder === "*" ? "Add Safe LoRA variant" : plainLine(`Add Safe LoRA variant (${folder})`);
}

/** What Safe LoRA does and what this pull request adds, for a reader who has never heard of it. */
export function methodIntro(): string {
  return (
    "[Safe LoRA](https://arxiv.org/abs/2405.16833) (Hsu et al., NeurIPS 2024) compares each LoRA module's update with the weight difference " +
    "between the aligned and the base release of the model family, and maps the updates that point furthest away from that alignment " +
    "direction onto it, to restore some of the safety behaviour that fine-tuning erodes. This pull request adds such a patched copy next " +
    "to the adapter."
  );
}

/** Why each kind of file is in the pull request, so that a reviewer knows what merging does to the repo. */
function changeNote(path: string): string {
  if (path === "README.md") return " — the repo's card: a short section pointing to the variant (`readmeSection: false` in `safe-lora.yaml` turns this off)";
  if (path.endsWith("/README.md")) return " — the variant's report card";
  return "";
}

/**
 * Exactly what merging changes: taken from the files the commits hold, not from what the bot meant to write,
 * so a root README edit can never hide behind "the adapter is not touched".
 */
export function changedFiles(changes: PullRequestContext["changes"]): string {
  // Only while the pull request is being opened: the description is rewritten once its commit exists.
  if (changes.length === 0) return "**What this pull request changes:** listed here once its first commit exists.";
  const items = changes.map((c) => `- ${c.change === "added" ? "adds" : "changes"} ${code(c.path)}${changeNote(c.path)}`);
  const changed = changes.filter((c) => c.change === "changed").length;
  return [
    `**What this pull request changes** (${changes.length} ${changes.length === 1 ? "file" : "files"}; nothing else in the repo${changed === 0 ? ", and no existing file" : ""}):`,
    "",
    ...items,
  ].join("\n");
}

function pinned(input: SafeLoraReport["inputs"]["base"]): string {
  return input.revision ? `${code(input.location)} @ ${code(input.revision.slice(0, 12))}` : code(input.location);
}

/** One variant at a glance: where it is, the pair, the selection, what it cost. */
export function summaryTable({ folder, report }: { folder: string; report: SafeLoraReport }): string {
  const { selection } = report;
  const tau = selection.threshold === null ? "no module has a cosine" : `τ = ${selection.threshold.toFixed(5)}`;
  const rows: Array<[string, string]> = [
    ["Variant", `[${code(`${variantFolderOf(folder)}/`)}](${linkPath(variantFolderOf(folder))}) — report card in its README.md`],
    ["Aligned model", `${pinned(report.inputs.aligned)} — ${resolvedByWords(report.inputs.aligned.resolvedBy)}`],
    ["Base model", `${pinned(report.inputs.base)} — ${resolvedByWords(report.inputs.base.resolvedBy)}`],
    ["Selection", `\`${selection.mode}:${selection.value}\` (${tau})`],
    ...(report.operator.kind === "subspace" ? [["Operator", `\`${report.operator.setting}\` — ${report.operator.formula}`] as [string, string]] : []),
    ["Modules projected", `${report.projectedCount} / ${report.moduleCount}`],
    ["Bytes read", bytesReadText(report)],
    ["Run time", `${(report.durationMs / 1000).toFixed(1)} s`],
    ["Execution provider", report.operator.executionProvider],
  ];
  return ["| | |", "|---|---|", ...rows.map(([label, value]) => `| ${label} | ${tableCell(value)} |`)].join("\n");
}

/** How to load the (first) variant before merging, and after, in the forge's words. */
export function tryIt(context: Pick<PullRequestContext, "tryVariant" | "variants">): string {
  const first = context.variants[0];
  const tryVariant = context.tryVariant({ subfolder: variantFolderOf(first?.folder ?? "."), aligned: first?.report.inputs.aligned.location ?? "<aligned model>" });
  return [
    "**Try it before merging:**",
    "",
    codeBlock(tryVariant.beforeMerging, tryVariant.language),
    "",
    `**After merging:** ${tryVariant.afterMergingNote}: ${code(tryVariant.afterMerging)}.`,
  ].join("\n");
}

/** The comment commands, folded: a reviewer sees them without the description growing. */
export function commandsFolded(commandHelp: string): string {
  return ["<details><summary>Commands</summary>", "", commandHelp, "", "</details>"].join("\n");
}

export function caveat(variants: PullRequestContext["variants"]): string {
  const measured = variants.length > 0 && variants.every((variant) => variant.report.behaviour?.status === "measured");
  const behaviour = measured ? "the behaviour figures come from a few prompts scored by keyword" : "nothing here measures how the model behaves";
  const subspace = variants.length > 0 && variants.every((variant) => variant.report.operator.kind === "subspace");
  const operator = subspace
    ? "The subspace operator projects onto V's top singular directions; the report card shows how much of each update it keeps"
    : "The operator rescales rather than projects; the report card shows by how much";
  return `_A weight-space heuristic: ${behaviour}. ${operator}. Evaluate the variant before you rely on it._`;
}

/** What a reviewer must see before anything else about one variant: the warnings, then what was given up. */
export function variantHeadline(report: SafeLoraReport): string[] {
  return [majorityWarning(report), modelTreeWarning(report), givenUp(report)].filter((line): line is string => line !== null);
}

/** One variant's part: its folder when there are several, its headline, its summary table, its measured behaviour. */
export function variantSections(variant: { folder: string; report: SafeLoraReport }, variantCount: number, behaviourPending: string | null = null): string[] {
  const behaviour = behaviourPullRequestSection(variant.report.behaviour) ?? (behaviourPending ? behaviourPendingLine(behaviourPending) : null);
  return [...(variantCount > 1 ? [`### ${code(variant.folder)}`] : []), ...variantHeadline(variant.report), summaryTable(variant), ...(behaviour ? [behaviour] : [])];
}

/** The pull request's description: one small function per section; each variant opens with its cost. */
export function pullRequestDescription(context: PullRequestContext): string {
  const sections = [
    pullRequestMarker(context.folder),
    ...context.variants.flatMap((variant) => variantSections(variant, context.variants.length, context.behaviourPending ?? null)),
    methodIntro(),
    changedFiles(context.changes),
    tryIt(context),
    commandsFolded(context.commandHelp),
    caveat(context.variants),
  ];
  return `${sections.join("\n\n")}\n`;
}
