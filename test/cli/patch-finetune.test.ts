import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FullFinetuneReport } from "../../src/report/full-finetune-schema.js";
import { runCli } from "../helpers/cli.js";
import { writeTinyFullFinetune, type TinyFullFinetune } from "../helpers/tiny-full-finetune.js";

let root: string;
let models: TinyFullFinetune;
let out: string;
beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), "safe-lora-cli-finetune-"));
  models = await writeTinyFullFinetune(root, { finetuneShards: 2 });
  out = join(root, "out");
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const patch = (...extra: string[]) => runCli(["patch", "--finetune", models.finetuned, "--base", models.base, "--aligned", models.aligned, "--out", out, ...extra]);

describe("safe-lora patch --finetune", () => {
  it("writes the variant as a sharded checkpoint with its index, config, card and report, and prints the summary", async () => {
    const result = await patch("--select", "top-k:4");
    expect(result.stderr).not.toMatch(/error/);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Safe LoRA: projected 4 of 14 modules \(top-k:4, τ = /);
    expect(result.stdout).toContain(`finetune ${models.finetuned} (local folder)  [explicit]`);
    expect(result.stdout).toMatch(/‖CΔW‖\/‖ΔW‖/);
    expect(result.stdout).toMatch(/read base [\d.]+ [kKMG]?B, aligned [\d.]+ [kKMG]?B, fine-tune [\d.]+ [kKMG]?B in /);
    const files = readdirSync(out).sort();
    expect(files).toEqual(["README.md", "config.json", "model-00001-of-00001.safetensors", "model.safetensors.index.json", "safe-lora-report.json"]);
    const report = FullFinetuneReport.parse(JSON.parse(readFileSync(join(out, "safe-lora-report.json"), "utf8")));
    expect(report).toMatchObject({ kind: "full-finetune", projectedCount: 4, moduleCount: 14, selection: { mode: "top-k", value: 4 } });
    expect(report.inputs.finetuned.location).toBe(models.finetuned);
    const card = readFileSync(join(out, "README.md"), "utf8");
    expect(card).toContain("# Safe LoRA variant of a full fine-tune");
    // The card's command makes it again: --finetune, the pair, the selection.
    expect(card).toContain(`safe-lora patch --finetune ${models.finetuned} --base ${models.base} --aligned ${models.aligned} --select top-k:4`);
  });

  it("--dry-run prints the cosines and the alternatives and writes nothing", async () => {
    const result = await patch("--dry-run");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("What each selection would project on these cosines:");
    expect(existsSync(out)).toBe(false);
  });

  it("on the CPU, refuses a module above --max-cpu-module-elements before writing anything, and says the two ways on", async () => {
    const result = await patch("--ep", "cpu", "--max-cpu-module-elements", "1000");
    expect(result.code).toBe(3);
    expect(result.stderr.trim()).toMatch(
      /^safe-lora: 10 of 14 modules are too large for a CPU run: .*above the cap of 1000 values per module on the CPU.*Run it with --ep cuda on a machine with an NVIDIA GPU, or pass --max-cpu-module-elements 2048 to run it on this CPU anyway$/,
    );
    expect(existsSync(out)).toBe(false);
    // Raised to the largest module, as the message says, the same run goes through.
    expect((await patch("--ep", "cpu", "--max-cpu-module-elements", "2048")).code).toBe(0);
  });

  it("--force replaces a previous --finetune output, and nothing else", async () => {
    expect((await patch()).code).toBe(0);
    expect((await patch("--force", "--select", "top-k:2")).code).toBe(0);
    expect(FullFinetuneReport.parse(JSON.parse(readFileSync(join(out, "safe-lora-report.json"), "utf8"))).projectedCount).toBe(2);
    writeFileSync(join(out, "notes.txt"), "mine");
    const refused = await patch("--force");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/it holds "notes.txt", which safe-lora does not write/);
  });

  it("refuses flags that do not go with it, before reading anything", async () => {
    const both = await runCli(["patch", "--finetune", models.finetuned, "--adapter", models.finetuned, "--out", out]);
    expect(both).toMatchObject({ code: 2, stderr: expect.stringMatching(/pass one of them, not both/) });
    expect(await patch("--operator", "subspace:4")).toMatchObject({ code: 2, stderr: expect.stringMatching(/paper's operator only/) });
    expect(await patch("--max-cpu-module-elements", "many")).toMatchObject({ code: 2, stderr: expect.stringMatching(/--max-cpu-module-elements many: give a whole number/) });
    const withAdapter = await runCli(["patch", "--adapter", models.finetuned, "--max-cpu-module-elements", "10", "--out", out]);
    expect(withAdapter).toMatchObject({ code: 2, stderr: expect.stringMatching(/use it with --finetune/) });
    expect(existsSync(out)).toBe(false);
  });

  it("a folder that is not a transformers model is refused with what it should hold", async () => {
    rmSync(join(models.finetuned, "config.json"));
    const result = await patch();
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/has no config\.json: a full fine-tune is a transformers model folder/);
  });
});
