import { formatBytes } from "./format-bytes.js";
import type { FullFinetuneReport, FullModuleReport } from "./full-finetune-schema.js";
import { modelTreeWarning, projectedNormRange } from "./headline.js";
import { code, tableCell } from "./markdown.js";
import { alignmentPairBlock, frontMatter, inputsList, reproduceSection, selectionLine, type ModelCardContext } from "./model-card.js";

const fmt = (value: number | null, digits = 5) => (value === null ? "—" : value.toFixed(digits));

/** The ‖CΔW‖/‖ΔW‖ range of the projected modules, as a share of the fine-tune's update they keep. */
export function finetuneGivenUp(report: FullFinetuneReport): string {
  const range = projectedNormRange(report);
  if (range === null) {
    return `**What was given up:** nothing — no module was projected (0 of ${report.moduleCount}), so this variant's weights equal the fine-tune's.`;
  }
  const { min, max } = range;
  const percent = (ratio: number) => `${(100 * ratio).toPrecision(2)} %`;
  const share = min === max ? percent(min) : `${percent(min)}–${percent(max)}`;
  const kept = report.moduleCount - report.projectedCount;
  return (
    `**What was given up:** ${report.projectedCount} of ${report.moduleCount} linear modules projected; there the fine-tune's update ` +
    `W_finetuned − W_aligned keeps ${share} of its norm (‖CΔW‖/‖ΔW‖); the other ${kept} keep the fine-tune's weights.`
  );
}

function skipNote(module: FullModuleReport): string {
  if (module.skipped === "zero-update") return "unchanged: the fine-tune did not change this module";
  if (module.skipped === "zero-alignment") return "unchanged: base and aligned weights are identical here";
  return "";
}

/** A prominent line when the selection projected more than half of the modules. */
export function finetuneMajorityWarning(report: FullFinetuneReport): string | null {
  if (!report.warnings?.includes("projects-most-modules")) return null;
  return `> **⚠️ ${report.projectedCount} of ${report.moduleCount} modules projected — more than half of the fine-tune.** It may no longer do what it was trained for.`;
}

function summary(report: FullFinetuneReport): string {
  const warning = [finetuneMajorityWarning(report), modelTreeWarning(report)].flatMap((line) => (line ? [line, ""] : []));
  return [
    "# Safe LoRA variant of a full fine-tune",
    "",
    ...warning,
    finetuneGivenUp(report),
    "",
    alignmentPairBlock(report),
    "",
    "Safe LoRA (Hsu et al., NeurIPS 2024) applied to a full fine-tune: per decoder linear, the update ΔW = W_finetuned − W_aligned is " +
      "compared with V, and the modules whose update points furthest away from it are replaced by W_aligned + C·ΔW. " +
      "Every other tensor (embeddings, norms, the LM head, the modules not projected) is the fine-tune's, byte for byte.",
    "",
    `- **Projected:** ${report.projectedCount} of ${report.moduleCount} modules`,
    selectionLine(report.selection),
    `- **Execution:** ${report.operator.executionProvider}, ${(report.durationMs / 1000).toFixed(1)} s`,
    `- **Weights:** ${report.variant.shards.length} safetensors shard${report.variant.shards.length === 1 ? "" : "s"} with ${code(report.variant.index)}, ${formatBytes(report.variant.totalSize)}`,
  ].join("\n");
}

function modulesSection(report: FullFinetuneReport): string {
  const rows = report.modules.map(
    (m) => `| ${m.layer ?? "—"} | ${tableCell(code(m.target))} | ${fmt(m.cosine)} | ${m.projected ? "**yes**" : "no"} | ${fmt(m.normRatio, 4)} | ${skipNote(m)} |`,
  );
  return [
    "## Modules",
    "",
    "cos = cos(CΔW, ΔW) with ΔW = W_finetuned − W_aligned; ‖CΔW‖/‖ΔW‖ shows how strongly the operator shrinks the module's update (applied only where projected).",
    "",
    "| layer | module | cos | projected | ‖CΔW‖/‖ΔW‖ | note |",
    "|---:|---|---:|:---:|---:|---|",
    ...rows,
  ].join("\n");
}

const CAVEATS = [
  "## Caveats",
  "",
  "- This is a weight-space heuristic. Nothing here measures the model's behaviour: evaluate the variant on your task and on safety prompts before you rely on it.",
  "- The operator C = V Vᵀ / ‖V‖_F is not a projection: it scales each component of ΔW along V's singular directions by σᵢ²/‖V‖_F, as the paper's reference implementation does.",
  "- Only the decoder layers' linear weights are covered; embeddings, norms and the LM head are the fine-tune's.",
].join("\n");

/** Bytes read per source. */
export function finetuneBytesReadText(report: FullFinetuneReport): string {
  const { bytesRead } = report;
  return `base ${formatBytes(bytesRead.base)}, aligned ${formatBytes(bytesRead.aligned)}, fine-tune ${formatBytes(bytesRead.finetuned)}`;
}

/** `README.md` of a full fine-tune's variant: the Hub's front matter, then the report in words and tables. */
export function renderFullFinetuneCard(report: FullFinetuneReport, context: ModelCardContext): string {
  const inputs = inputsList(
    [
      ["Fine-tune", report.inputs.finetuned],
      ["Base (unaligned)", report.inputs.base],
      ["Aligned", report.inputs.aligned],
    ],
    finetuneBytesReadText(report),
  );
  return `${[frontMatter(context, "finetune"), summary(report), modulesSection(report), inputs, reproduceSection(context.command), CAVEATS].join("\n\n")}\n`;
}
