import { formatBytes } from "../report/format-bytes.js";
import type { SafeLoraReport } from "../report/schema.js";

/** Beyond this many modules the table lists only the projected ones: the JSON report has them all. */
const FULL_TABLE_LIMIT = 80;

/** The human summary printed at the end of `safe-lora patch`. */
export function summaryTable(report: SafeLoraReport): string {
  const { selection } = report;
  const tau = selection.threshold === null ? "no module has a cosine" : `τ = ${selection.threshold.toFixed(5)}`;
  const lines = [`Safe LoRA: projected ${report.projectedCount} of ${report.moduleCount} modules (${selection.mode}:${selection.value}, ${tau})`, ""];
  const full = report.modules.length <= FULL_TABLE_LIMIT;
  const shown = full ? report.modules : report.modules.filter((module) => module.projected);
  const width = Math.max(6, ...shown.map((module) => module.target.length));
  lines.push(`${"layer".padStart(5)}  ${"module".padEnd(width)}  ${"cosine".padStart(8)}  projected  ${"‖CB‖/‖B‖".padStart(9)}`);
  for (const module of shown) {
    const cosine = module.cosine === null ? `— (${module.skipped})` : module.cosine.toFixed(5);
    lines.push(
      `${String(module.layer ?? "—").padStart(5)}  ${module.target.padEnd(width)}  ${cosine.padStart(8)}  ${(module.projected ? "yes" : "no").padEnd(9)}  ${(module.normRatio === null ? "—" : module.normRatio.toExponential(2)).padStart(9)}`,
    );
  }
  if (!full) lines.push(`… and ${report.modules.length - shown.length} kept modules; safe-lora-report.json lists every module`);
  const { base, aligned, adapter } = report.bytesRead;
  lines.push("", `read ${formatBytes(base)} base, ${formatBytes(aligned)} aligned, ${formatBytes(adapter)} adapter in ${(report.durationMs / 1000).toFixed(1)} s on ${report.operator.executionProvider}`);
  return lines.join("\n");
}
