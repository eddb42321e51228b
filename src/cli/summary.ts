import { bytesReadText, isModelTreeChoice, projectedNormRange } from "../report/headline.js";
import { DEFAULT_SELECTION, formatSelection } from "../projection/selection.js";
import { finetuneBytesReadText } from "../report/full-finetune-card.js";
import { isFullFinetuneReport, type FullFinetuneReport } from "../report/full-finetune-schema.js";
import type { SafeLoraReport } from "../report/schema.js";

/** Beyond this many modules the table lists only the projected ones: the JSON report has them all. */
const FULL_TABLE_LIMIT = 80;

type Input = SafeLoraReport["inputs"]["base"];
/** The report of an adapter's patch or of a full fine-tune's. */
type AnyReport = SafeLoraReport | FullFinetuneReport;

/** Where an input is, at which commit, and which rule chose it; a model card's choice is said to be one. */
function inputLine(role: string, input: Input): string {
  const where = input.revision ? `${input.location} @ ${input.revision}` : `${input.location} (local folder)`;
  const how = isModelTreeChoice(input) ? `${input.resolvedBy}: chosen from a model card on the Hub, which anyone who can edit that card can change` : input.resolvedBy;
  return `${role.padEnd(8)} ${where}  [${how}]`;
}

/** The pair, in plain sight: V — and so every cosine — depends on it. */
function pairSummaryLines(report: AnyReport): string[] {
  const patched = isFullFinetuneReport(report) ? inputLine("finetune", report.inputs.finetuned) : inputLine("adapter", report.inputs.adapter);
  return [inputLine("aligned", report.inputs.aligned), inputLine("base", report.inputs.base), patched];
}

/** One line: the model card chose part of the pair; what to check and how to choose it yourself. */
export function modelTreeStderrLine(report: AnyReport, role: "base" | "aligned"): string {
  return (
    `the ${role} ${report.inputs[role].location} was chosen from a model card on the Hub (the model tree), which anyone who can edit that card can change: ` +
    `check that it is the unaligned release of the same family, or pass --${role} yourself (--no-model-tree refuses such a choice)`
  );
}

/** One line when the selection projected more than half of the modules: how many, what it costs, how to pick fewer. */
export function majorityStderrLine(report: AnyReport, selection: string, options: { dryRun?: boolean } = {}): string | null {
  if (!report.warnings?.includes("projects-most-modules")) return null;
  const range = projectedNormRange(report);
  const percent = (ratio: number) => `${(ratio * 100).toPrecision(2)} %`;
  const kept = range === null ? "" : `, and those keep only ${range.min === range.max ? percent(range.min) : `${percent(range.min)}–${percent(range.max)}`} of their update (‖CB‖/‖B‖)`;
  return (
    `${selection} ${options.dryRun ? "would project" : "projects"} ${report.projectedCount} of ${report.moduleCount} modules, more than half${kept}: the variant gives up most of the fine-tune. ` +
    `Pick fewer with --select ${formatSelection(DEFAULT_SELECTION)} (the default) or a lower threshold${options.dryRun ? "" : "; --dry-run shows what each selection projects"}`
  );
}

/** The human summary printed at the end of `safe-lora patch` (and of `--dry-run`, where nothing is written). */
export function summaryTable(report: AnyReport, options: { dryRun?: boolean } = {}): string {
  const { selection } = report;
  const tau = selection.threshold === null ? "no module has a cosine" : `τ = ${selection.threshold.toFixed(5)}`;
  const verb = options.dryRun ? "would project" : "projected";
  const lines = [`Safe LoRA${options.dryRun ? " (dry run)" : ""}: ${verb} ${report.projectedCount} of ${report.moduleCount} modules (${selection.mode}:${selection.value}, ${tau})`, ""];
  lines.push(...pairSummaryLines(report), "");
  const full = report.modules.length <= FULL_TABLE_LIMIT;
  const shown = full ? report.modules : report.modules.filter((module) => module.projected);
  const width = Math.max(6, ...shown.map((module) => module.target.length));
  const ratio = isFullFinetuneReport(report) ? "‖CΔW‖/‖ΔW‖" : "‖CB‖/‖B‖";
  const ratioWidth = Math.max(9, ratio.length);
  lines.push(`${"layer".padStart(5)}  ${"module".padEnd(width)}  ${"cosine".padStart(8)}  projected  ${ratio.padStart(ratioWidth)}`);
  for (const module of shown) {
    const cosine = module.cosine === null ? `— (${module.skipped})` : module.cosine.toFixed(5);
    lines.push(
      `${String(module.layer ?? "—").padStart(5)}  ${module.target.padEnd(width)}  ${cosine.padStart(8)}  ${(module.projected ? "yes" : "no").padEnd(9)}  ${(module.normRatio === null ? "—" : module.normRatio.toExponential(2)).padStart(ratioWidth)}`,
    );
  }
  if (!full) lines.push(`… and ${report.modules.length - shown.length} kept modules; safe-lora-report.json lists every module`);
  lines.push("", `read ${isFullFinetuneReport(report) ? finetuneBytesReadText(report) : bytesReadText(report)} in ${(report.durationMs / 1000).toFixed(1)} s on ${report.operator.executionProvider}`);
  return lines.join("\n");
}
