import { pullRequestMarker } from "../forge/forge.js";
import { finetuneBytesReadText, finetuneGivenUp, finetuneMajorityWarning } from "./full-finetune-card.js";
import type { FullFinetuneReport } from "./full-finetune-schema.js";
import { modelTreeWarning, resolvedByWords } from "./headline.js";
import { code, linkPath, tableCell } from "./markdown.js";
import { changedFiles, type FileChange } from "./pr-body.js";
import { variantFolderOf } from "./variant-folder.js";

export interface FinetunePullRequestContext {
  /** The fine-tune's folder ("." for the root). */
  readonly folder: string;
  /** The report committed for it. */
  readonly report: FullFinetuneReport;
  /** Every file the pull request adds or changes against the branch it targets, as its commits left them. */
  readonly changes: ReadonlyArray<FileChange>;
}

const pinned = (input: FullFinetuneReport["inputs"]["base"]) => (input.revision ? `${code(input.location)} @ ${code(input.revision.slice(0, 12))}` : code(input.location));

function summaryTable({ folder, report }: FinetunePullRequestContext): string {
  const { selection } = report;
  const tau = selection.threshold === null ? "no module has a cosine" : `τ = ${selection.threshold.toFixed(5)}`;
  const rows: Array<[string, string]> = [
    ["Variant", `[${code(`${variantFolderOf(folder)}/`)}](${linkPath(variantFolderOf(folder))}) — ${report.variant.shards.length} safetensors shard(s) with their index; report card in its README.md`],
    ["Aligned model", `${pinned(report.inputs.aligned)} — ${resolvedByWords(report.inputs.aligned.resolvedBy)}`],
    ["Base model", `${pinned(report.inputs.base)} — ${resolvedByWords(report.inputs.base.resolvedBy)}`],
    ["Selection", `\`${selection.mode}:${selection.value}\` (${tau})`],
    ["Modules projected", `${report.projectedCount} / ${report.moduleCount}`],
    ["Bytes read", finetuneBytesReadText(report)],
    ["Run time", `${(report.durationMs / 1000).toFixed(1)} s`],
    ["Execution provider", report.operator.executionProvider],
  ];
  return ["| | |", "|---|---|", ...rows.map(([label, value]) => `| ${label} | ${tableCell(value)} |`)].join("\n");
}

/** The pull request of a full fine-tune's variant: its cost first, then what it is, what merging changes, how to load it. */
export function finetunePullRequestDescription(context: FinetunePullRequestContext): string {
  const { report, folder } = context;
  const headline = [finetuneMajorityWarning(report), modelTreeWarning(report), finetuneGivenUp(report)].filter((line): line is string => line !== null);
  const sections = [
    pullRequestMarker(folder),
    ...headline,
    summaryTable(context),
    "[Safe LoRA](https://arxiv.org/abs/2405.16833) (Hsu et al., NeurIPS 2024), applied to a full fine-tune: per decoder linear, the fine-tune's update " +
      "W_finetuned − W_aligned is compared with the difference between the aligned and the base release, and the modules whose update points furthest " +
      "away from it are replaced by W_aligned + C·ΔW. This pull request adds that patched copy next to the fine-tune; the fine-tune itself is not touched.",
    changedFiles(context.changes),
    `**Load it:** the variant is a transformers checkpoint: \`AutoModelForCausalLM.from_pretrained(<this repo>, subfolder=${JSON.stringify(variantFolderOf(folder))})\` once merged.`,
    "_A weight-space heuristic: nothing here measures how the model behaves, and the operator rescales rather than projects; the report card shows by how much. Evaluate the variant before you rely on it._",
  ];
  return `${sections.join("\n\n")}\n`;
}
