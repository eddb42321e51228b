import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SafeLoraReport } from "../src/report/schema.js";
import { runCli } from "./helpers/cli.js";
import { GOLDEN_CASES, goldenPath, loadExpected, selectionFlag } from "./helpers/golden.js";
import { expectGoldenCosines, expectGoldenSelection, expectGoldenTensors } from "./helpers/golden-compare.js";

const work = mkdtempSync(join(tmpdir(), "safe-lora-golden-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.each(GOLDEN_CASES)("golden case %s (official IBM/SafeLoRA outputs), local folders", (caseName) => {
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

    it("finds the official cosines within 2e-5", () => expectGoldenCosines(report, run));
    it("projects the same set of modules", () => expectGoldenSelection(report, run));
    it("writes lora_B within 1e-5 of the official output, every other tensor and the config unchanged", () => expectGoldenTensors(caseName, run, out));
  });
});
