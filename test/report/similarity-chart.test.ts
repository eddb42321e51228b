import { describe, expect, it } from "vitest";
import { CHART, renderSimilarityChart } from "../../src/report/similarity-chart.js";
import { eightModules, manyModules } from "./report-fixture.js";

interface Text {
  readonly cls: string;
  readonly x: number;
  readonly y: number;
  readonly anchor: string;
  readonly text: string;
}

/** The <text> elements of a chart with their positions, and the horizontal extent each covers (estimated). */
function texts(svg: string): Text[] {
  return [...svg.matchAll(/<text (?:class="([\w-]+)" )?x="([\d.]+)" y="([\d.]+)"[^>]*?(?:text-anchor="(\w+)")?[^>]*>([^<]*)<\/text>/g)].map((m) => ({
    cls: m[1] ?? "",
    x: Number(m[2]),
    y: Number(m[3]),
    anchor: m[4] ?? "start",
    text: m[5]!,
  }));
}
const extent = (t: Text) => {
  const width = [...t.text].length * CHART.charWidth;
  const start = t.anchor === "middle" ? t.x - width / 2 : t.anchor === "end" ? t.x - width : t.x;
  return { start, end: start + width };
};
/** Left-to-right labels on one line never overlap, with at least `gap` between them. */
function expectApart(labels: Text[], gap: number) {
  const sorted = [...labels].sort((a, b) => a.x - b.x);
  for (let i = 1; i < sorted.length; i++) expect(extent(sorted[i]!).start - extent(sorted[i - 1]!).end).toBeGreaterThanOrEqual(gap);
}
const size = (svg: string) => {
  const m = /width="(\d+)" height="(\d+)"/.exec(svg)!;
  return { width: Number(m[1]), height: Number(m[2]) };
};
const bars = (svg: string) => [...svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="(#\w+)" rx/g)].map((m) => ({ x: Number(m[1]), width: Number(m[3]), fill: m[5] }));

describe("renderSimilarityChart", () => {
  it("labels every module type in visible text, one row each, at 8 modules", () => {
    const svg = renderSimilarityChart(eightModules());
    const rows = texts(svg).filter((t) => t.cls === "row-label");
    expect(rows.map((t) => t.text)).toEqual(["q_proj", "v_proj"]);
    expect(texts(svg).filter((t) => t.cls === "layer-label").map((t) => t.text)).toEqual(["0", "1", "2", "3"]);
    expect(bars(svg).filter((b) => b.fill === "#f97316")).toHaveLength(4);
  });

  it("stays readable at 224 modules: 7 labelled rows, layer labels apart, bars wide enough, all inside", () => {
    const report = manyModules();
    const svg = renderSimilarityChart(report);
    const { width, height } = size(svg);
    const all = texts(svg);
    const rows = all.filter((t) => t.cls === "row-label");
    expect(rows.map((t) => t.text)).toEqual(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]);
    // Rows are one under the other, each label clear of the next row's.
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.y - rows[i - 1]!.y).toBeGreaterThanOrEqual(CHART.rowPlot + CHART.rowTitle);
    const layers = all.filter((t) => t.cls === "layer-label");
    expect(layers.length).toBeGreaterThanOrEqual(8);
    expect(layers[0]!.text).toBe("0");
    expectApart(layers, CHART.labelGap);
    expectApart(all.filter((t) => t.cls === "legend"), 4);
    for (const t of all) {
      expect(extent(t).start).toBeGreaterThanOrEqual(0);
      expect(extent(t).end).toBeLessThanOrEqual(width);
      expect(t.y).toBeLessThanOrEqual(height);
    }
    const drawn = bars(svg);
    expect(drawn).toHaveLength(224);
    expect(drawn.filter((b) => b.fill === "#f97316")).toHaveLength(report.projectedCount);
    for (const bar of drawn) {
      expect(bar.width).toBeGreaterThanOrEqual(6);
      expect(bar.x + bar.width).toBeLessThanOrEqual(width - CHART.right);
    }
    expect(width).toBeLessThanOrEqual(CHART.left + CHART.maxPlot + CHART.right);
  });

  it("thins layer labels out at 80 layers without letting them touch", () => {
    const svg = renderSimilarityChart(manyModules(80));
    const layers = texts(svg).filter((t) => t.cls === "layer-label");
    expectApart(layers, CHART.labelGap);
    expect(svg).toMatch(/layer \(labelled every \d+\)/);
  });
});
