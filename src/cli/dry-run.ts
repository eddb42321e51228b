import { formatSelection, previewSelection, type Selection } from "../projection/selection.js";
import type { SelectionPreview } from "../report/schema.js";

/**
 * The selections a dry run compares with the one asked for: shares around the default and the paper's 11 % and
 * 35 %, and thresholds around the paper's τ = 0.35 — enough to see where the cosines of this adapter fall.
 */
const ALTERNATIVES: readonly Selection[] = [
  { mode: "fraction", value: 0.05 },
  { mode: "fraction", value: 0.1 },
  { mode: "fraction", value: 0.2 },
  { mode: "fraction", value: 0.35 },
  { mode: "fraction", value: 0.5 },
  { mode: "threshold", value: 0.2 },
  { mode: "threshold", value: 0.3 },
  { mode: "threshold", value: 0.35 },
  { mode: "threshold", value: 0.4 },
  { mode: "threshold", value: 0.5 },
];

/** What the selection asked for and each alternative would project on this report's cosines; the asked one first. */
export function selectionAlternatives(report: { readonly modules: ReadonlyArray<{ readonly cosine: number | null }> }, asked: Selection): SelectionPreview[] {
  const cosines = report.modules.flatMap((module) => (module.cosine === null ? [] : [module.cosine]));
  const askedText = formatSelection(asked);
  const selections = [asked, ...ALTERNATIVES.filter((selection) => formatSelection(selection) !== askedText)];
  return selections.map((selection) => ({ selection: formatSelection(selection), ...previewSelection(selection, cosines) }));
}

/** The dry run's table: one row per selection, the asked one marked. */
export function alternativesTable(alternatives: readonly SelectionPreview[], moduleCount: number): string {
  const width = Math.max(9, ...alternatives.map((row) => row.selection.length + 2));
  const lines = [`${"selection".padEnd(width)}  ${"τ".padStart(8)}  projects`];
  alternatives.forEach((row, index) => {
    const name = `${row.selection}${index === 0 ? " *" : ""}`;
    const tau = row.threshold === null ? "—" : row.threshold.toFixed(5);
    lines.push(`${name.padEnd(width)}  ${tau.padStart(8)}  ${row.projectedCount} of ${moduleCount}`);
  });
  lines.push("* the selection asked for (--select, or the default)");
  return lines.join("\n");
}
