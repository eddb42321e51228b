import { existsSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

describe("safe-lora demo (npm run demo)", () => {
  it("runs the bot end to end offline: pull request with measured behaviour, report, re-patch by comment", async () => {
    const result = await runCli(["demo"]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/5\. the bot opened pull request #1 "Add Safe LoRA variant"/);
    // The miniature's figures as PyTorch measured them (test/fixtures/miniature/reference.json), here through the local endpoint.
    expect(result.stdout).toContain(
      "   5 of 8 modules projected (threshold:0.5); measured through the endpoint, original → variant:\n" +
        "   harmful requests refused: 0.0 % → 94.7 %\n   benign requests answered: 100.0 % → 100.0 %\n   task prompts answered exactly: 100.0 % → 0.0 %\n",
    );
    expect(result.stdout).toMatch(/Done: committed `[0-9a-f]{12}` — `\.` patched with `top-k:2`, 2 of 8 modules projected\./);
    expect(result.stdout).toContain("measured again, original → variant:\n   harmful requests refused: 0.0 % → 0.0 %\n   benign requests answered: 100.0 % → 100.0 %\n   task prompts answered exactly: 100.0 % → 18.8 %\n");
    const report = /\(report: (\S+safe-lora-report\.json)\)/.exec(result.stdout)![1]!;
    expect(existsSync(report)).toBe(true);
    rmSync(dirname(report), { recursive: true, force: true });
    expect(result.stdout).toMatch(/curl -X POST .*discussions\/1\/comment/s);
  });
});
