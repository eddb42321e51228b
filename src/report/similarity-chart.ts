import type { SafeLoraReport } from "./schema.js";

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

const HEIGHT = 320;
const MARGIN = { top: 36, right: 24, bottom: 52, left: 56 };

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!);
}

const fmt = (value: number) => (Math.round(value * 1e5) / 1e5).toString();

/**
 * `similarity.svg`: one bar per module in layer order, its height the cosine between the module's update
 * and its image under the alignment operator; projected modules in orange, the threshold as a dashed line.
 */
export function renderSimilarityChart(report: SafeLoraReport): string {
  const modules = report.modules;
  const count = Math.max(1, modules.length);
  // At least 560 px of plot (room for the legend) with few modules; with many, at most 28 px per module and
  // about 1,100 px in all, but never under 6 px.
  const slot = count * 28 >= 560 ? Math.max(6, Math.min(28, Math.floor(1100 / count))) : Math.ceil(560 / count);
  const plotWidth = slot * modules.length;
  const width = MARGIN.left + plotWidth + MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const cosines = modules.flatMap((m) => (m.cosine === null ? [] : [m.cosine]));
  const threshold = report.selection.threshold;
  const top = Math.min(1, Math.ceil(Math.max(0.1, ...cosines, threshold ?? 0) * 10 + 0.5) / 10);
  const bottom = Math.min(0, Math.floor(Math.min(0, ...cosines, threshold ?? 0) * 10) / 10);
  const y = (value: number) => MARGIN.top + ((top - value) / (top - bottom)) * plotHeight;
  const x = (index: number) => MARGIN.left + index * slot;

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEIGHT}" viewBox="0 0 ${width} ${HEIGHT}" ` +
      `font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12" role="img" ` +
      `aria-label="Safe LoRA: cosine per module, ${report.projectedCount} of ${report.moduleCount} projected">`,
  );
  parts.push(`<title>Safe LoRA: cos(CΔW, ΔW) per module; ${report.projectedCount} of ${report.moduleCount} projected</title>`);

  // Alternate faint bands per layer so that the eye can group a layer's modules.
  let bandStart = 0;
  let bandIndex = 0;
  for (let i = 1; i <= modules.length; i++) {
    if (i === modules.length || modules[i]!.layer !== modules[bandStart]!.layer) {
      if (bandIndex % 2 === 0) {
        parts.push(`<rect x="${x(bandStart)}" y="${MARGIN.top}" width="${(i - bandStart) * slot}" height="${plotHeight}" fill="${COLOR.band}" fill-opacity="0.08"/>`);
      }
      const layer = modules[bandStart]!.layer;
      if (layer !== null && (i - bandStart) * slot >= 14) {
        parts.push(`<text x="${x(bandStart) + ((i - bandStart) * slot) / 2}" y="${MARGIN.top + plotHeight + 16}" fill="${COLOR.text}" text-anchor="middle">${layer}</text>`);
      }
      bandStart = i;
      bandIndex++;
    }
  }

  for (let tick = Math.ceil(bottom * 10); tick <= Math.round(top * 10); tick++) {
    const value = tick / 10;
    parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotWidth}" y1="${y(value)}" y2="${y(value)}" stroke="${COLOR.grid}" stroke-opacity="${value === 0 ? 0.8 : 0.25}"/>`);
    parts.push(`<text x="${MARGIN.left - 8}" y="${y(value) + 4}" fill="${COLOR.text}" text-anchor="end">${value.toFixed(1)}</text>`);
  }

  modules.forEach((module, index) => {
    const label = escapeXml(`${module.name}: ${module.cosine === null ? `no cosine (${module.skipped})` : `cos ${fmt(module.cosine)}`}${module.projected ? ", projected" : ""}`);
    const barX = x(index) + slot * 0.15;
    const barWidth = Math.max(2, slot * 0.7);
    if (module.cosine === null) {
      parts.push(`<g><title>${label}</title><circle cx="${x(index) + slot / 2}" cy="${y(0)}" r="3" fill="none" stroke="${COLOR.skipped}"/></g>`);
      return;
    }
    const y0 = y(Math.max(0, module.cosine));
    const height = Math.max(1, Math.abs(y(module.cosine) - y(0)));
    const fill = module.projected ? COLOR.projected : COLOR.kept;
    parts.push(`<g><title>${label}</title><rect x="${barX}" y="${y0}" width="${barWidth}" height="${height}" fill="${fill}" rx="1"/></g>`);
  });

  if (threshold !== null) {
    parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotWidth}" y1="${y(threshold)}" y2="${y(threshold)}" stroke="${COLOR.threshold}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
  }

  parts.push(`<text x="${MARGIN.left + plotWidth / 2}" y="${HEIGHT - 12}" fill="${COLOR.text}" text-anchor="middle">layer (modules in block order)</text>`);
  parts.push(`<text transform="translate(16 ${MARGIN.top + plotHeight / 2}) rotate(-90)" fill="${COLOR.text}" text-anchor="middle">cos(CΔW, ΔW)</text>`);
  const legendY = 18;
  parts.push(`<rect x="${MARGIN.left}" y="${legendY - 9}" width="10" height="10" fill="${COLOR.projected}"/>`);
  parts.push(`<text x="${MARGIN.left + 14}" y="${legendY}" fill="${COLOR.text}">projected (${report.projectedCount})</text>`);
  parts.push(`<rect x="${MARGIN.left + 130}" y="${legendY - 9}" width="10" height="10" fill="${COLOR.kept}"/>`);
  parts.push(`<text x="${MARGIN.left + 144}" y="${legendY}" fill="${COLOR.text}">kept (${report.moduleCount - report.projectedCount})</text>`);
  if (threshold !== null) {
    // In the legend rather than on the line, where it would cover bars.
    parts.push(`<line x1="${MARGIN.left + 230}" x2="${MARGIN.left + 252}" y1="${legendY - 4}" y2="${legendY - 4}" stroke="${COLOR.threshold}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    parts.push(`<text x="${MARGIN.left + 258}" y="${legendY}" fill="${COLOR.threshold}">τ = ${fmt(threshold)} (projected when cos ≤ τ)</text>`);
  }
  parts.push(`</svg>`);
  return `${parts.join("\n")}\n`;
}
