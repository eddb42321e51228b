import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import type { SafeLoraReport } from "../../src/report/schema.js";
import { goldenPath, type ExpectedRun } from "./golden.js";
import { maxAbsRelative, readAllTensors } from "./tensors.js";

const moduleOf = (loraBKey: string) => loraBKey.replace(/\.lora_B\.weight$/, "");

/** The official cosines within 2e-5, module by module. */
export function expectGoldenCosines(report: SafeLoraReport, run: ExpectedRun): void {
  const ours = new Map(report.modules.map((module) => [module.name, module]));
  expect(ours.size).toBe(run.modules.length);
  run.modules.forEach((key, index) => {
    const module = ours.get(moduleOf(key));
    expect(module, key).toBeDefined();
    expect(Math.abs(module!.cosineExact! - run.cos[index]!), key).toBeLessThanOrEqual(2e-5);
  });
}

/** The same set of projected modules, and the same derived τ for top-k runs. */
export function expectGoldenSelection(report: SafeLoraReport, run: ExpectedRun): void {
  const projected = report.modules.filter((module) => module.projected).map((module) => module.name).sort();
  expect(projected).toEqual(run.projected.map(moduleOf).sort());
  expect(report.projectedCount).toBe(run.projected.length);
  if (run.derived_threshold !== undefined) expect(report.selection.threshold).toBe(run.derived_threshold);
}

/** Patched lora_B within 1e-5 (max-abs, relative) of the official output; every other tensor bit-identical. */
export async function expectGoldenTensors(caseName: string, run: ExpectedRun, outDir: string): Promise<void> {
  const theirs = await readAllTensors(goldenPath(caseName, run.expected_dir, "adapter_model.safetensors"));
  const mine = await readAllTensors(join(outDir, "adapter_model.safetensors"));
  const input = await readAllTensors(goldenPath(caseName, "adapter", "adapter_model.safetensors"));
  expect([...mine.tensors.keys()].sort()).toEqual([...theirs.tensors.keys()].sort());
  const projected = new Set(run.projected);
  for (const [name, reference] of theirs.tensors) {
    const tensor = mine.tensors.get(name)!;
    expect(tensor.dtype, name).toBe(reference.dtype);
    expect(tensor.shape, name).toEqual(reference.shape);
    if (projected.has(name)) {
      expect(maxAbsRelative(tensor.values(), reference.values()), name).toBeLessThanOrEqual(1e-5);
      // The official code did change it: make sure we compare against a real change.
      expect(Buffer.from(input.tensors.get(name)!.bytes).equals(Buffer.from(reference.bytes)), name).toBe(false);
    } else {
      expect(Buffer.from(tensor.bytes).equals(Buffer.from(reference.bytes)), name).toBe(true);
    }
  }
  // The input's metadata is kept; provenance is only added under safe_lora.* keys.
  for (const [key, value] of Object.entries(theirs.metadata)) expect(mine.metadata[key]).toBe(value);
  expect(Object.keys(mine.metadata).filter((key) => !(key in theirs.metadata)).every((key) => key.startsWith("safe_lora."))).toBe(true);
  expect(readFileSync(join(outDir, "adapter_config.json"))).toEqual(readFileSync(goldenPath(caseName, "adapter", "adapter_config.json")));
}
