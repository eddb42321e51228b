import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SafeLoraReport } from "../src/report/schema.js";
import { runCli } from "./helpers/cli.js";
import { GOLDEN_CASES, goldenPath, loadExpected, selectionFlag } from "./helpers/golden.js";
import { maxAbsRelative, readAllTensors } from "./helpers/tensors.js";

const work = mkdtempSync(join(tmpdir(), "safe-lora-golden-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const moduleOf = (loraBKey: string) => loraBKey.replace(/\.lora_B\.weight$/, "");

describe.each(GOLDEN_CASES)("golden case %s (official IBM/SafeLoRA outputs)", (caseName) => {
  const expected = loadExpected(caseName);

  describe.each(expected.runs.map((run) => [run.expected_dir, run] as const))("%s", (_dir, run) => {
    const out = join(work, caseName, run.expected_dir);
    let report: SafeLoraReport;

    it("runs safe-lora patch on the case", async () => {
      const result = await runCli([
        "patch",
        "--adapter", goldenPath(caseName, "adapter"),
        "--base", goldenPath(caseName, "base"),
        "--aligned", goldenPath(caseName, "chat"),
        "--select", selectionFlag(run),
        "--out", out,
        "--json",
      ]);
      expect(result.stderr).not.toContain("error");
      expect(result.code).toBe(0);
      report = SafeLoraReport.parse(JSON.parse(result.stdout));
      expect(JSON.parse(readFileSync(join(out, "safe-lora-report.json"), "utf8"))).toEqual(report);
    });

    it("finds the official cosines within 2e-5", () => {
      const ours = new Map(report.modules.map((module) => [module.name, module]));
      expect(ours.size).toBe(run.modules.length);
      run.modules.forEach((key, index) => {
        const module = ours.get(moduleOf(key));
        expect(module, key).toBeDefined();
        expect(Math.abs(module!.cosineExact! - run.cos[index]!), key).toBeLessThanOrEqual(2e-5);
      });
    });

    it("projects the same set of modules", () => {
      const projected = report.modules.filter((module) => module.projected).map((module) => module.name).sort();
      expect(projected).toEqual(run.projected.map(moduleOf).sort());
      expect(report.projectedCount).toBe(run.projected.length);
      if (run.derived_threshold !== undefined) expect(report.selection.threshold).toBe(run.derived_threshold);
    });

    it("writes lora_B within 1e-5 of the official output and every other tensor bit-identical", async () => {
      const theirs = await readAllTensors(goldenPath(caseName, run.expected_dir, "adapter_model.safetensors"));
      const mine = await readAllTensors(join(out, "adapter_model.safetensors"));
      expect([...mine.tensors.keys()].sort()).toEqual([...theirs.tensors.keys()].sort());
      const projected = new Set(run.projected);
      for (const [name, reference] of theirs.tensors) {
        const tensor = mine.tensors.get(name)!;
        expect(tensor.dtype, name).toBe(reference.dtype);
        expect(tensor.shape, name).toEqual(reference.shape);
        if (projected.has(name)) {
          expect(maxAbsRelative(tensor.values(), reference.values()), name).toBeLessThanOrEqual(1e-5);
          // The official code did change it: make sure we compare against a real change.
          const input = (await readAllTensors(goldenPath(caseName, "adapter", "adapter_model.safetensors"))).tensors.get(name)!;
          expect(Buffer.compare(Buffer.from(input.bytes), Buffer.from(reference.bytes)), name).not.toBe(0);
        } else {
          expect(Buffer.from(tensor.bytes).equals(Buffer.from(reference.bytes)), name).toBe(true);
        }
      }
      // The input's metadata is kept; provenance is only added under safe_lora.* keys.
      for (const [key, value] of Object.entries(theirs.metadata)) expect(mine.metadata[key]).toBe(value);
      expect(Object.keys(mine.metadata).filter((key) => !(key in theirs.metadata)).every((key) => key.startsWith("safe_lora."))).toBe(true);
    });

    it("keeps adapter_config.json byte for byte", () => {
      expect(readFileSync(join(out, "adapter_config.json"))).toEqual(readFileSync(goldenPath(caseName, "adapter", "adapter_config.json")));
    });
  });
});
