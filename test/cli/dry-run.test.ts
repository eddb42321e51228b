import { mkdirSync, readdirSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SafeLoraReport } from "../../src/report/schema.js";
import { runCli } from "../helpers/cli.js";
import { copyGolden, type CaseCopy } from "../helpers/fixture-copy.js";

let fixture: CaseCopy;
beforeAll(() => {
  fixture = copyGolden("llama-gqa-qv");
});
afterAll(() => fixture.remove());

const inputs = () => ["--adapter", fixture.adapter, "--base", fixture.base, "--aligned", fixture.chat];

describe("safe-lora patch --dry-run", () => {
  it("prints the cosines and what each selection would project, and writes nothing — even over a non-empty --out", async () => {
    const out = join(fixture.root, "taken");
    mkdirSync(out);
    writeFileSync(join(out, "keep.txt"), "mine");
    const result = await runCli(["patch", ...inputs(), "--out", out, "--dry-run"]);
    expect(result.code).toBe(0);
    expect(readdirSync(out)).toEqual(["keep.txt"]);
    expect(readdirSync(fixture.root).filter((name) => name.includes("staging") || name.startsWith(".taken"))).toEqual([]);
    const lines = result.stdout.split("\n");
    expect(lines[0]).toBe("Safe LoRA (dry run): would project 1 of 8 modules (fraction:0.1, τ = 0.14694)");
    expect(lines).toContain("    0  q_proj   0.19846  no           8.92e-2");
    // The asked selection first, then the alternatives.
    expect(result.stdout).toMatch(/^fraction:0\.1 \*\s+0\.14694  1 of 8$/m);
    expect(result.stdout).toMatch(/^threshold:0\.35\s+0\.35000  6 of 8$/m);
    expect(result.stdout).toMatch(/^fraction:0\.5\s+0\.31199  4 of 8$/m);
    expect(result.stdout).toContain(`dry run: nothing written; without --dry-run this writes ${out}/`);
  });

  it("with --json prints the report a run would write, plus the alternatives, reading the same bytes as a run", async () => {
    const dry = await runCli(["patch", ...inputs(), "--out", join(fixture.root, "dry"), "--dry-run", "--json", "--select", "threshold:0.33"]);
    expect(dry.code).toBe(0);
    expect(existsSync(join(fixture.root, "dry"))).toBe(false);
    const report = SafeLoraReport.parse(JSON.parse(dry.stdout));
    expect(report.projectedCount).toBe(4);
    expect(report.dryRun!.alternatives[0]).toEqual({ selection: "threshold:0.33", threshold: 0.33, projectedCount: 4 });
    expect(report.dryRun!.alternatives.find((row) => row.selection === "fraction:0.1")).toEqual({ selection: "fraction:0.1", threshold: 0.14694, projectedCount: 1 });

    const real = await runCli(["patch", ...inputs(), "--out", join(fixture.root, "real"), "--json", "--select", "threshold:0.33"]);
    const written = SafeLoraReport.parse(JSON.parse(real.stdout));
    expect(report.bytesRead).toEqual(written.bytesRead);
    expect(report.modules).toEqual(written.modules);
    expect(written.dryRun).toBeUndefined();
  });
});

describe("a selection that projects more than half of the modules", () => {
  it("is warned about on stderr in one line: how many, what it costs, how to pick fewer", async () => {
    const result = await runCli(["patch", ...inputs(), "--out", join(fixture.root, "most"), "--select", "fraction:0.6", "--json"]);
    expect(result.code).toBe(0);
    const warnings = result.stderr.split("\n").filter((line) => line.includes("warning"));
    expect(warnings).toEqual([
      "safe-lora: warning: fraction:0.6 projects 5 of 8 modules, more than half, and those keep only 4.1 %–15 % of their update (‖CB‖/‖B‖): " +
        "the variant gives up most of the fine-tune. Pick fewer with --select fraction:0.1 (the default) or a lower threshold; --dry-run shows what each selection projects",
    ]);
    expect(SafeLoraReport.parse(JSON.parse(result.stdout)).warnings).toEqual(["projects-most-modules"]);
  });

  it("is not warned about at half or fewer (the default projects 1 of 8 here)", async () => {
    for (const select of ["fraction:0.1", "fraction:0.5"]) {
      const result = await runCli(["patch", ...inputs(), "--out", join(fixture.root, `few-${select}`), "--select", select, "--json"]);
      expect(result.code).toBe(0);
      expect(result.stderr).not.toMatch(/warning/);
      expect(SafeLoraReport.parse(JSON.parse(result.stdout)).warnings).toBeUndefined();
    }
  });
});

