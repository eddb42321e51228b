import { describe, expect, it } from "vitest";
import { renderModelCard } from "../../src/report/model-card.js";
import { eightModules, report, moduleReport } from "./report-fixture.js";

const CONTEXT = { alignedHubId: "test-org/llama-chat", license: null, command: "safe-lora patch --adapter x" };
/** The card's body up to its first section: what a reviewer reads first. */
const opening = (card: string) => card.slice(card.indexOf("# Safe LoRA variant"), card.indexOf("## Modules"));

describe("renderModelCard", () => {
  it("opens with what was given up: the ‖CB‖/‖B‖ range of the projected modules, in numbers and words", () => {
    const card = renderModelCard(eightModules(), CONTEXT);
    const first = opening(card);
    expect(first).toContain(
      "**What was given up:** 4 of 8 modules projected; the projected modules keep 4.1–15 % of their update's norm (‖CB‖/‖B‖). " +
        "In words: in those modules the fine-tuned update is mostly removed, so they act close to the aligned model; the other 4 keep their update untouched.",
    );
    // Before the method's explanation and the counts.
    expect(first.indexOf("What was given up")).toBeLessThan(first.indexOf("Safe LoRA (Hsu"));
  });

  it("says nothing was given up when no module was projected", () => {
    const card = renderModelCard(report([moduleReport(0, "q_proj", 0.9, false)]), CONTEXT);
    expect(opening(card)).toContain("**What was given up:** nothing — no module was projected (0 of 1)");
  });

  it("puts a warning line first when more than half of the modules are projected, and none at half", () => {
    const most = opening(renderModelCard(eightModules(true), CONTEXT));
    expect(most).toMatch(/^# Safe LoRA variant\n\n> \*\*⚠️ 8 of 8 modules projected — more than half of the adapter\.\*\*/);
    expect(opening(renderModelCard(eightModules(), CONTEXT))).not.toContain("more than half");
  });

  it("shows the pair with full revisions and how each was found", () => {
    const first = opening(renderModelCard(eightModules(), CONTEXT));
    expect(first).toContain(`- **Aligned:** \`test-org/llama-chat\` @ \`${"c".repeat(40)}\` — from the adapter's \`base_model_name_or_path\``);
    expect(first).toContain(`- **Base (unaligned):** \`test-org/llama-base\` @ \`${"b".repeat(40)}\` — from this tool's registry of known pairs`);
    expect(first).not.toContain("⚠️");
  });

  it("marks a base chosen from the model tree prominently, before the numbers", () => {
    const base = eightModules();
    const fromTree = { ...base, inputs: { ...base.inputs, base: { ...base.inputs.base, resolvedBy: "model-tree" } } };
    const first = opening(renderModelCard(fromTree, CONTEXT));
    expect(first).toContain(
      "> **⚠️ The base model `test-org/llama-base` was chosen from the aligned model's card, which anyone who can edit that card can change — check it.**",
    );
    expect(first.indexOf("⚠️ The base model")).toBeLessThan(first.indexOf("What was given up"));
    expect(first).toContain("— chosen from the aligned model's card (its `base_model`, the Hub's model tree) — see the warning above");
  });

  it("keeps a resolvedBy note (outside text naming repos) escaped", () => {
    const base = eightModules();
    const aliased = { ...base, inputs: { ...base.inputs, aligned: { ...base.inputs.aligned, resolvedBy: "adapter-config (evil/[x](http://e) is a copy of @alice)" } } };
    const first = opening(renderModelCard(aliased, CONTEXT));
    // `http\://` is escaped too: GFM would turn a bare URL into a link by itself.
    expect(first).toContain("from the adapter's `base_model_name_or_path` \\(evil/\\[x\\]\\(http\\://e\\) is a copy of @\u2060alice\\)");
  });

  it("names the alignment cache as the source of 0 bytes of base and aligned weights", () => {
    const cached = renderModelCard({ ...eightModules(), bytesRead: { base: 0, aligned: 0, adapter: 91348 }, alignmentCache: { hits: 8, misses: 0 } }, CONTEXT);
    expect(cached).toContain("Bytes read: base 0 B, aligned 0 B (from the alignment cache), adapter 91.3 KB.");
    const partly = renderModelCard({ ...eightModules(), alignmentCache: { hits: 3, misses: 5 } }, CONTEXT);
    expect(partly).toContain("Bytes read: base 103.0 KB, aligned 103.0 KB (3 of 8 modules from the alignment cache), adapter 91.3 KB.");
    expect(renderModelCard(eightModules(), CONTEXT)).toContain("Bytes read: base 103.0 KB, aligned 103.0 KB, adapter 91.3 KB.");
  });
});
