import { existsSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

describe("safe-lora demo (npm run demo)", () => {
  it("runs the bot end to end offline: pull request, report, re-patch by comment", async () => {
    const result = await runCli(["demo"]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/4\. the bot opened pull request #1 "Add Safe LoRA variant"/);
    expect(result.stdout).toMatch(/4 of 8 modules projected \(threshold:0\.33\)/);
    expect(result.stdout).toMatch(/Done: committed `[0-9a-f]{12}` — `\.` patched with `threshold:0\.5`, 8 of 8 modules projected\./);
    const report = /\(report: (\S+safe-lora-report\.json)\)/.exec(result.stdout)![1]!;
    expect(existsSync(report)).toBe(true);
    rmSync(dirname(report), { recursive: true, force: true });
    expect(result.stdout).toMatch(/curl -X POST .*discussions\/1\/comment/s);
  });
});
