import type { ModuleReport, SafeLoraReport } from "../../src/report/schema.js";

const TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/** A module of layer `layer`; cosine and ‖CB‖/‖B‖ as given. */
export function moduleReport(layer: number, target: string, cosine: number, projected: boolean, normRatio = 0.1): ModuleReport {
  const block = ["gate_proj", "up_proj", "down_proj"].includes(target) ? "mlp" : "self_attn";
  return {
    name: `base_model.model.model.layers.${layer}.${block}.${target}`,
    layer,
    target,
    shape: [64, 64],
    rank: 8,
    cosine,
    cosineExact: cosine,
    projected,
    skipped: null,
    normRatio,
    alignmentDistance: 0.9,
    weightCosine: 0.7,
  };
}

/** A report in the shape patchAdapter writes, for a Hub pair; override what a test is about. */
export function report(modules: ModuleReport[], overrides: Partial<SafeLoraReport> = {}): SafeLoraReport {
  const projectedCount = modules.filter((m) => m.projected).length;
  return {
    schemaVersion: 1,
    method: "safe-lora",
    tool: { name: "safe-lora", version: "0.1.0" },
    createdAt: "2026-01-01T00:00:00.000Z",
    selection: { mode: "threshold", value: 0.33, threshold: 0.33 },
    operator: { formula: "C = V Vᵀ / ‖V‖_F", executionProvider: "cpu" },
    modules,
    projectedCount,
    moduleCount: modules.length,
    untouchedTensors: [],
    bytesRead: { base: 103029, aligned: 103029, adapter: 91348 },
    inputs: {
      adapter: { location: "acme/dialog-summary-lora", revision: "a".repeat(40), resolvedBy: "explicit", files: [] },
      base: { location: "test-org/llama-base", revision: "b".repeat(40), resolvedBy: "registry", files: [] },
      aligned: { location: "test-org/llama-chat", revision: "c".repeat(40), resolvedBy: "adapter-config", files: [] },
    },
    durationMs: 100,
    ...(projectedCount * 2 > modules.length ? { warnings: ["projects-most-modules" as const] } : {}),
    ...overrides,
  };
}

/** The shipped reference case's shape: 4 layers of q and v, 4 of 8 projected, ‖CB‖/‖B‖ from 4.1 % to 15 %. */
export function eightModules(projectAll = false): SafeLoraReport {
  const rows: Array<[number, string, number, number]> = [
    [0, "q_proj", 0.19846, 0.0892],
    [0, "v_proj", 0.44815, 0.0382],
    [1, "q_proj", 0.14694, 0.1496],
    [1, "v_proj", 0.41585, 0.0268],
    [2, "q_proj", 0.34259, 0.0531],
    [2, "v_proj", 0.31199, 0.0408],
    [3, "q_proj", 0.33819, 0.0577],
    [3, "v_proj", 0.21632, 0.0792],
  ];
  const tau = projectAll ? 0.5 : 0.33;
  return report(
    rows.map(([layer, target, cos, ratio]) => moduleReport(layer, target, cos, cos <= tau, ratio)),
    { selection: { mode: "threshold", value: tau, threshold: tau } },
  );
}

/** Llama-7B with every linear adapted: 32 layers × 7 module types = 224 modules, the least aligned tenth projected. */
export function manyModules(layers = 32): SafeLoraReport {
  const modules: ModuleReport[] = [];
  for (let layer = 0; layer < layers; layer++) {
    TARGETS.forEach((target, t) => modules.push(moduleReport(layer, target, ((layer * 7 + t * 13) % 60) / 100 + 0.02, false)));
  }
  const tau = [...modules.map((m) => m.cosine!)].sort((a, b) => a - b)[Math.ceil(modules.length / 10) - 1]!;
  for (const m of modules) m.projected = m.cosine! <= tau;
  return report(modules, { selection: { mode: "fraction", value: 0.1, threshold: tau } });
}
