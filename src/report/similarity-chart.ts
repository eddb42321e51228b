import type { ModuleReport, SafeLoraReport } from "./schema.js";

// Mid-tone colours with enough contrast on both the Hub's light (#fff) and dark (#0b0f19) backgrounds;
// the background itself stays transparent.
const COLOR = {
  text: "#8b949e",
  grid: "#8b949e",
  kept: "#3b82f6",
  projected: "#f97316",
  skipped: "#8b949e",
  threshold: "#ef4444",
  band: "#8b949e",
};

/** Geometry, exported so tests can check that labels fit where they are drawn. */
export const CHART = {
  left: 64,
  right: 24,
  top: 44,
  /** Room for the layer labels under the last row and the axis title. */
  bottom: 48,
  rowTitle: 16,
  rowPlot: 72,
  rowGap: 10,
  /** The plot is at least this wide (the legend needs it) and at most about `maxPlot`. */
  minPlot: 560,
  maxPlot: 1100,
  /** Approximate advance of one character at font-size 12, used to keep labels apart. */
  charWidth: 7,
  /** Smallest gap wanted between two layer labels. */
  labelGap: 8,
} as const;

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!);
}

const fmt = (value: number) => (Math.round(value * 1e5) / 1e5).toString();

/**
 * One row per kind of module (q_proj, v_proj, …): the module path with its layer index taken out, so that
 * two towers that both have a `q_proj` (text and vision) stay apart.
 */
function rowKey(module: ModuleReport): string {
  return module.layer === null ? module.name : module.name.replace(`.${module.layer}.`, ".*.");
}

interface Row {
  readonly key: string;
  readonly label: string;
  readonly modules: Map<number | null, ModuleReport>;
}

function rowsOf(modules: readonly ModuleReport[]): Row[] {
  const rows = new Map<string, { target: string; modules: Map<number | null, ModuleReport> }>();
  for (const module of modules) {
    const key = rowKey(module);
    let row = rows.get(key);
    if (!row) rows.set(key, (row = { target: module.target, modules: new Map() }));
    row.modules.set(module.layer, module);
  }
  const targets = [...rows.values()].map((row) => row.target);
  const unique = new Set(targets).size === targets.length;
  // The short name when it tells the rows apart; otherwise the path without PEFT's own prefix.
  return [...rows.entries()].map(([key, row]) => ({ key, label: unique ? row.target : key.replace(/^base_model\.model\./, ""), modules: row.modules }));
}

/** Every how many layers a label is drawn, so that labels of `digits` characters never touch. */
function labelStep(slot: number, digits: number): number {
  const needed = digits * CHART.charWidth + CHART.labelGap;
  for (const step of [1, 2, 4, 5, 10, 20, 25, 50, 100]) if (step * slot >= needed) return step;
  return 100;
}

/** A y tick step that leaves at least 16 px between ticks of one row. */
function tickStep(range: number): number {
  for (const step of [0.1, 0.2, 0.25, 0.5, 1]) if ((step / range) * CHART.rowPlot >= 16) return step;
  return 1;
}

/**
 * `similarity.svg`: the cosine between each module's update and its image under the alignment operator.
 * One row per module type (labelled, since a card on the Hub shows the SVG as an image and its tooltips never
 * appear), one column per layer; projected modules in orange, the threshold as a dashed line in every row.
 * The same layout holds 8 modules or 224 (32 layers × 7 types): rows keep bars wide, and layer labels thin out.
 */
export function renderSimilarityChart(report: SafeLoraReport): string {
  const modules = report.modules;
  const rows = rowsOf(modules);
  const layers = [...new Set(modules.map((m) => m.layer))].sort((a, b) => (a ?? Infinity) - (b ?? Infinity));
  const columns = Math.max(1, layers.length);
  const slot = Math.max(8, Math.min(140, Math.floor(CHART.maxPlot / columns), Math.ceil(CHART.minPlot / columns)));
  const plotWidth = Math.max(CHART.minPlot, slot * columns);
  const rowHeight = CHART.rowTitle + CHART.rowPlot + CHART.rowGap;
  const width = CHART.left + plotWidth + CHART.right;
  const height = CHART.top + rows.length * rowHeight + CHART.bottom;

  const cosines = modules.flatMap((m) => (m.cosine === null ? [] : [m.cosine]));
  const threshold = report.selection.threshold;
  const top = Math.min(1, Math.ceil(Math.max(0.1, ...cosines, threshold ?? 0) * 10 + 0.5) / 10);
  const bottom = Math.min(0, Math.floor(Math.min(0, ...cosines, threshold ?? 0) * 10) / 10);
  const rowTop = (row: number) => CHART.top + row * rowHeight + CHART.rowTitle;
  const y = (row: number, value: number) => rowTop(row) + ((top - value) / (top - bottom)) * CHART.rowPlot;
  const x = (column: number) => CHART.left + column * slot;
  const columnOf = new Map(layers.map((layer, index) => [layer, index]));
  const step = tickStep(top - bottom);

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12" role="img" ` +
      `aria-label="Safe LoRA: cosine per module, ${report.projectedCount} of ${report.moduleCount} projected">`,
  );
  parts.push(`<title>Safe LoRA: cos(CΔW, ΔW) per module; ${report.projectedCount} of ${report.moduleCount} projected</title>`);

  rows.forEach((row, r) => {
    // The row's name above its plot, where it has the whole width and cannot meet the y tick labels.
    parts.push(`<text class="row-label" x="${CHART.left}" y="${rowTop(r) - 4}" fill="${COLOR.text}" font-weight="600">${escapeXml(row.label)}</text>`);
    parts.push(`<rect x="${CHART.left}" y="${rowTop(r)}" width="${plotWidth}" height="${CHART.rowPlot}" fill="${COLOR.band}" fill-opacity="0.06"/>`);
    for (let tick = Math.ceil(bottom / step - 1e-9); tick * step <= top + 1e-9; tick++) {
      const value = tick * step;
      parts.push(`<line x1="${CHART.left}" x2="${CHART.left + plotWidth}" y1="${y(r, value)}" y2="${y(r, value)}" stroke="${COLOR.grid}" stroke-opacity="${Math.abs(value) < 1e-9 ? 0.8 : 0.25}"/>`);
      parts.push(`<text x="${CHART.left - 6}" y="${y(r, value) + 4}" fill="${COLOR.text}" text-anchor="end" font-size="11">${value.toFixed(step === 0.25 ? 2 : 1)}</text>`);
    }
    for (const [layer, module] of row.modules) {
      const column = columnOf.get(layer)!;
      const label = escapeXml(`${module.name}: ${module.cosine === null ? `no cosine (${module.skipped})` : `cos ${fmt(module.cosine)}`}${module.projected ? ", projected" : ""}`);
      const barWidth = Math.max(2, Math.min(36, slot * 0.7));
      const barX = x(column) + (slot - barWidth) / 2;
      if (module.cosine === null) {
        parts.push(`<g><title>${label}</title><circle cx="${x(column) + slot / 2}" cy="${y(r, 0)}" r="3" fill="none" stroke="${COLOR.skipped}"/></g>`);
        continue;
      }
      const y0 = y(r, Math.max(0, module.cosine));
      const barHeight = Math.max(1, Math.abs(y(r, module.cosine) - y(r, 0)));
      const fill = module.projected ? COLOR.projected : COLOR.kept;
      parts.push(`<g><title>${label}</title><rect x="${barX}" y="${y0}" width="${barWidth}" height="${barHeight}" fill="${fill}" rx="1"/></g>`);
    }
    if (threshold !== null) {
      parts.push(`<line x1="${CHART.left}" x2="${CHART.left + plotWidth}" y1="${y(r, threshold)}" y2="${y(r, threshold)}" stroke="${COLOR.threshold}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    }
  });

  const axisY = CHART.top + rows.length * rowHeight - CHART.rowGap + 14;
  const every = labelStep(slot, Math.max(1, ...layers.map((layer) => (layer === null ? "—" : String(layer)).length)));
  layers.forEach((layer, column) => {
    if (layer !== null && layer % every !== 0) return;
    parts.push(`<text class="layer-label" x="${x(column) + slot / 2}" y="${axisY}" fill="${COLOR.text}" text-anchor="middle">${layer ?? "—"}</text>`);
  });
  parts.push(`<text x="${CHART.left + plotWidth / 2}" y="${height - 10}" fill="${COLOR.text}" text-anchor="middle">layer${every > 1 ? ` (labelled every ${every})` : ""}</text>`);
  parts.push(`<text transform="translate(14 ${CHART.top + (rows.length * rowHeight) / 2}) rotate(-90)" fill="${COLOR.text}" text-anchor="middle">cos(CΔW, ΔW)</text>`);

  const legendY = 20;
  parts.push(`<rect x="${CHART.left}" y="${legendY - 9}" width="10" height="10" fill="${COLOR.projected}"/>`);
  parts.push(`<text class="legend" x="${CHART.left + 14}" y="${legendY}" fill="${COLOR.text}">projected (${report.projectedCount})</text>`);
  parts.push(`<rect x="${CHART.left + 130}" y="${legendY - 9}" width="10" height="10" fill="${COLOR.kept}"/>`);
  parts.push(`<text class="legend" x="${CHART.left + 144}" y="${legendY}" fill="${COLOR.text}">kept (${report.moduleCount - report.projectedCount})</text>`);
  if (threshold !== null) {
    // In the legend rather than on the line, where it would cover bars.
    parts.push(`<line x1="${CHART.left + 230}" x2="${CHART.left + 252}" y1="${legendY - 4}" y2="${legendY - 4}" stroke="${COLOR.threshold}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    parts.push(`<text class="legend" x="${CHART.left + 258}" y="${legendY}" fill="${COLOR.threshold}">τ = ${fmt(threshold)} (projected when cos ≤ τ)</text>`);
  }
  parts.push(`</svg>`);
  return `${parts.join("\n")}\n`;
}
