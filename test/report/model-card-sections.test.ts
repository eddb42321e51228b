import { describe, expect, it } from "vitest";
import { caveatsSection, cardSummary, chartImage, frontMatter, inputsSection, modulesSection, renderModelCard, reproduceSection } from "../../src/report/model-card.js";
import { eightModules, moduleReport, report } from "./report-fixture.js";

describe("the variant's card, section by section", () => {
  it("frontMatter: base_model only for a Hub id, a licence that cannot add keys, the tags", () => {
    expect(frontMatter({ alignedHubId: "org/chat", license: "apache-2.0", command: "" }).split("\n")).toEqual([
      "---",
      "base_model: org/chat",
      "base_model_relation: adapter",
      "library_name: peft",
      "license: apache-2.0",
      "tags:",
      "  - safe-lora",
      "  - lora",
      "  - peft",
      "---",
    ]);
    const local = frontMatter({ alignedHubId: null, license: "mine\nbase_model: evil", command: "" });
    expect(local.split("\n").filter((line) => line.startsWith("base_model"))).toEqual([]);
    expect(local).toContain('license: "mine\\nbase_model: evil"');
  });

  it("cardSummary: the title, what was given up before the method, the counts and the selection", () => {
    const summary = cardSummary(eightModules());
    expect(summary).toMatch(/^# Safe LoRA variant\n\n\*\*What was given up:\*\* 4 of 8 modules projected/);
    expect(summary.indexOf("**Alignment pair**")).toBeLessThan(summary.indexOf("Safe LoRA (Hsu et al."));
    expect(summary).toContain("- **Projected:** 4 of 8 modules");
    expect(summary).toContain("- **Selection:** `threshold:0.33` (τ = 0.33000; a module is projected when its rounded cosine is ≤ τ)");
    expect(cardSummary(report([moduleReport(0, "q_proj", 0.5, false)], { selection: { mode: "top-k", value: 1, threshold: null } }))).toContain("(none (no module has a cosine);");
  });

  it("chartImage: the chart file next to the card", () => {
    expect(chartImage()).toBe("![cosine per module](similarity.svg)");
  });

  it("modulesSection: a row per module, why an unchanged one is, and what was copied as it was", () => {
    const modules = [moduleReport(0, "q_proj", 0.2, true, 0.0892), { ...moduleReport(0, "v_proj", 0.9, false), skipped: "zero-update" as const, cosine: null }];
    const section = modulesSection(report(modules, { untouchedTensors: ["base_model.model.lm_head.bias"] }));
    expect(section).toMatch(/^## Modules\n/);
    expect(section).toContain("| 0 | `q_proj` | 0.20000 | **yes** | 0.0892 |  |");
    expect(section).toContain("| 0 | `v_proj` | — | no | 0.1000 | unchanged: the update is zero (lora_B is all zeros) |");
    expect(section.endsWith("\n\nCopied unchanged: `base_model.model.lm_head.bias`.")).toBe(true);
    expect(modulesSection(eightModules())).not.toContain("Copied unchanged");
  });

  it("inputsSection: each input pinned, with its files' hashes, and the bytes read", () => {
    const base = eightModules();
    const withFiles = { ...base, inputs: { ...base.inputs, base: { ...base.inputs.base, files: [{ path: "config.json", size: 10, sha256: "f".repeat(64) }] } } };
    const section = inputsSection(withFiles);
    expect(section).toContain("- **Adapter:** `acme/dialog-summary-lora` @ `" + "a".repeat(40) + "`");
    expect(section).toContain("- **Base (unaligned):** `test-org/llama-base` @ `" + "b".repeat(40) + "`\n  - `config.json` sha256 `" + "f".repeat(64) + "`");
    expect(section.endsWith("Bytes read: base 103.0 KB, aligned 103.0 KB, adapter 91.3 KB.")).toBe(true);
  });

  it("reproduceSection: the installed command in a bash block", () => {
    expect(reproduceSection("safe-lora patch --adapter x")).toMatch(/^## Reproduce\n\nWith the `safe-lora` command installed from the project's source[\s\S]*\n\n```bash\nsafe-lora patch --adapter x\n```$/);
  });

  it("caveatsSection: not a measurement, not a projection, not every tensor", () => {
    const caveats = caveatsSection(eightModules()).split("\n- ");
    expect(caveats).toHaveLength(4);
    expect(caveats[1]).toMatch(/^This is a weight-space heuristic/);
    expect(caveats[2]).toMatch(/^The operator C = V Vᵀ \/ ‖V‖_F is not a projection/);
    expect(caveats[3]).toMatch(/^Tensors other than LoRA factors/);
  });

  it("renderModelCard: the sections in order, a blank line apart, ending in a newline", () => {
    const context = { alignedHubId: "org/chat", license: null, command: "safe-lora patch" };
    const r = eightModules();
    expect(renderModelCard(r, context)).toBe(
      `${[frontMatter(context), cardSummary(r), chartImage(), modulesSection(r), inputsSection(r), reproduceSection(context.command), caveatsSection(r)].join("\n\n")}\n`,
    );
  });
});
