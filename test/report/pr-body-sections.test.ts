import { describe, expect, it } from "vitest";
import {
  caveat,
  changedFiles,
  commandsFolded,
  methodIntro,
  pullRequestDescription,
  summaryTable,
  tryIt,
  variantHeadline,
  variantSections,
} from "../../src/report/pr-body.js";
import { eightModules } from "./report-fixture.js";

/** A forge's words for trying a variant, recording what it was asked. */
const asked: Array<{ subfolder: string; aligned: string }> = [];
const tryVariant = (variant: { subfolder: string; aligned: string }) => {
  asked.push(variant);
  return { language: "sh", beforeMerging: `fetch ${variant.subfolder} for ${variant.aligned}`, afterMerging: "pull", afterMergingNote: "just pull" };
};
const variant = (folder = ".") => ({ folder, report: eightModules() });

describe("the pull request description, section by section", () => {
  it("variantSections: a heading per variant only when there are several", () => {
    expect(variantSections(variant("a"), 1)[0]).not.toMatch(/^###/);
    expect(variantSections(variant("a"), 2)[0]).toBe("### `a`");
    expect(variantSections(variant("a"), 2).at(-1)).toBe(summaryTable(variant("a")));
  });

  it("variantHeadline: the warnings first, then what was given up", () => {
    const most = { ...eightModules(true), inputs: { ...eightModules().inputs, base: { ...eightModules().inputs.base, resolvedBy: "model-tree" as const } } };
    const lines = variantHeadline(most);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^> \*\*⚠️ 8 of 8 modules projected/);
    expect(lines[1]).toMatch(/^> \*\*⚠️ The base model `test-org\/llama-base` was chosen from the aligned model's card/);
    expect(lines[2]).toMatch(/^\*\*What was given up:\*\*/);
    expect(variantHeadline(eightModules())).toEqual([expect.stringMatching(/^\*\*What was given up:\*\*/)]);
  });

  it("summaryTable: where the variant is, the pair, the selection and what it cost", () => {
    expect(summaryTable(variant("adapters/x")).split("\n")).toEqual([
      "| | |",
      "|---|---|",
      "| Variant | [`adapters/x/safe-lora/`](./adapters/x/safe-lora) — report card in its README.md |",
      "| Aligned model | `test-org/llama-chat` @ `cccccccccccc` — from the adapter's `base_model_name_or_path` |",
      "| Base model | `test-org/llama-base` @ `bbbbbbbbbbbb` — from this tool's registry of known pairs |",
      "| Selection | `threshold:0.33` (τ = 0.33000) |",
      "| Modules projected | 4 / 8 |",
      "| Bytes read | base 103.0 KB, aligned 103.0 KB, adapter 91.3 KB |",
      "| Run time | 0.1 s |",
      "| Execution provider | cpu |",
    ]);
  });

  it("methodIntro: the method with its paper, and what the pull request adds", () => {
    expect(methodIntro()).toMatch(/^\[Safe LoRA\]\(https:\/\/arxiv\.org\/abs\/2405\.16833\) \(Hsu et al\., NeurIPS 2024\)[\s\S]*This pull request adds such a patched copy next to the adapter\.$/);
  });

  it("changedFiles: a placeholder until the first commit, then every file with why it is there", () => {
    expect(changedFiles([])).toBe("**What this pull request changes:** listed here once its first commit exists.");
    expect(changedFiles([{ path: "a/safe-lora/adapter_model.safetensors", change: "added" }])).toBe(
      "**What this pull request changes** (1 file; nothing else in the repo, and no existing file):\n\n- adds `a/safe-lora/adapter_model.safetensors`",
    );
    expect(changedFiles([{ path: "README.md", change: "changed" }])).toContain("(1 file; nothing else in the repo):\n\n- changes `README.md` — the repo's card");
  });

  it("tryIt: the forge's code for the first variant's folder and aligned model", () => {
    asked.length = 0;
    expect(tryIt({ tryVariant, variants: [variant("a"), variant("b")] })).toBe(
      "**Try it before merging:**\n\n```sh\nfetch a/safe-lora for test-org/llama-chat\n```\n\n**After merging:** just pull: `pull`.",
    );
    expect(asked).toEqual([{ subfolder: "a/safe-lora", aligned: "test-org/llama-chat" }]);
    tryIt({ tryVariant, variants: [] });
    expect(asked.at(-1)).toEqual({ subfolder: "safe-lora", aligned: "<aligned model>" });
  });

  it("commandsFolded: the commands' help in a closed details block", () => {
    expect(commandsFolded("- `@bot help`")).toBe("<details><summary>Commands</summary>\n\n- `@bot help`\n\n</details>");
  });

  it("caveat: a heuristic, not a measurement", () => {
    expect(caveat([variant("a")])).toMatch(/^_A weight-space heuristic: nothing here measures how the model behaves\..*_$/);
  });

  it("pullRequestDescription: the marker, each variant, then the method, the files, trying it, the commands, the caveat", () => {
    const text = pullRequestDescription({ folder: "*", commandHelp: "HELP", tryVariant, variants: [variant("a"), variant("b")], changes: [] });
    const order = ['<!-- safe-lora-bot:pull-request {"folder":"*"} -->', "### `a`", "### `b`", "[Safe LoRA]", "**What this pull request changes:**", "**Try it before merging:**", "HELP", "_A weight-space"];
    const at = order.map((needle) => text.indexOf(needle));
    expect(at.every((index) => index >= 0)).toBe(true);
    expect([...at].sort((x, y) => x - y)).toEqual(at);
    expect(text.startsWith(order[0]!)).toBe(true);
    expect(text.endsWith("_\n")).toBe(true);
  });
});

