import { describe, expect, it } from "vitest";
import { commentCommandHelp } from "../../src/commands/parse-comment.js";
import { hubTryVariant } from "../../src/hub/try-variant.js";
import { pullRequestDescription, type FileChange } from "../../src/report/pr-body.js";
import { eightModules } from "./report-fixture.js";

const CHANGES: FileChange[] = [
  { path: "README.md", change: "changed" },
  { path: "safe-lora/README.md", change: "added" },
  { path: "safe-lora/adapter_model.safetensors", change: "added" },
];
const describePr = (report = eightModules(), changes = CHANGES) =>
  pullRequestDescription({
    folder: ".",
    commandHelp: commentCommandHelp("safe-lora-bot"),
    tryVariant: (variant) => hubTryVariant({ repo: "acme/lora", num: 3, ...variant }),
    variants: [{ folder: ".", report }],
    changes,
  });
/** The description without its hidden marker: what a reader sees first. */
const visible = (text: string) => text.replace(/^<!--.*?-->\n\n/, "");

describe("pullRequestDescription", () => {
  it("opens with what was given up, before the explanation of the method", () => {
    const text = visible(describePr());
    expect(text).toMatch(/^\*\*What was given up:\*\* 4 of 8 modules projected; the projected modules keep 4\.1–15 % of their update's norm/);
    expect(text.indexOf("What was given up")).toBeLessThan(text.indexOf("compares each LoRA module"));
  });

  it("opens with a warning when more than half of the modules are projected", () => {
    const text = visible(describePr(eightModules(true)));
    expect(text).toMatch(/^> \*\*⚠️ 8 of 8 modules projected — more than half of the adapter\.\*\*/);
    expect(visible(describePr())).not.toContain("more than half");
  });

  it("shows the pair with revisions and how each was found, and marks a model-tree base", () => {
    expect(describePr()).toContain("| Aligned model | `test-org/llama-chat` @ `cccccccccccc` — from the adapter's `base_model_name_or_path` |");
    expect(describePr()).toContain("| Base model | `test-org/llama-base` @ `bbbbbbbbbbbb` — from this tool's registry of known pairs |");
    const report = eightModules();
    const fromTree = visible(describePr({ ...report, inputs: { ...report.inputs, base: { ...report.inputs.base, resolvedBy: "model-tree" } } }));
    expect(fromTree).toMatch(/^> \*\*⚠️ The base model `test-org\/llama-base` was chosen from the aligned model's card, which anyone who can edit that card can change — check it\.\*\*/);
  });

  it("lists exactly the files the pull request adds and changes, the root README included", () => {
    const text = describePr();
    expect(text).not.toContain("not touched");
    expect(text).toContain(
      [
        "**What this pull request changes** (3 files; nothing else in the repo):",
        "",
        "- changes `README.md` — the repo's card: a short section pointing to the variant (`readmeSection: false` in `safe-lora.yaml` turns this off)",
        "- adds `safe-lora/README.md` — the variant's report card",
        "- adds `safe-lora/adapter_model.safetensors`",
      ].join("\n"),
    );
    const onlyAdds = describePr(eightModules(), CHANGES.slice(1));
    expect(onlyAdds).toContain("(2 files; nothing else in the repo, and no existing file)");
  });

  it("keeps a file path from outside a code span", () => {
    expect(describePr(eightModules(), [{ path: "a`b/safe-lora/x @bob", change: "added" }])).toContain("- adds ``a`b/safe-lora/x @\u2060bob``");
  });

  it("says the alignment came from the cache when no base or aligned byte was read", () => {
    const cached = describePr({ ...eightModules(), bytesRead: { base: 0, aligned: 0, adapter: 49300 }, alignmentCache: { hits: 8, misses: 0 } });
    expect(cached).toContain("| Bytes read | base 0 B, aligned 0 B (from the alignment cache), adapter 49.3 KB |");
  });
});
