import { code, escapeMarkdown } from "./markdown.js";
import { formatBytes } from "./format-bytes.js";
import { DEFAULT_SELECTION, formatSelection } from "../projection/selection.js";
import type { SafeLoraReport } from "./schema.js";

/**
 * What a reviewer must read first, shared by the variant's card and the pull request: what was given up, whether
 * most of the adapter went, and where the base/aligned pair came from. Both open with these lines, so that a
 * "4 of 8 projected" is never read without its cost.
 */

type Input = SafeLoraReport["inputs"]["base"];
/** A report of either method: both name the pair the same way. */
type WithPair = { readonly inputs: { readonly base: Input; readonly aligned: Input } };

/** Two significant digits are enough to tell 4 % from 15 %, and 0.4 % from 4 %. */
function percent(ratio: number): string {
  const value = ratio * 100;
  return value >= 10 ? value.toFixed(0) : value.toPrecision(2);
}

/** The ‖CB‖/‖B‖ range of the projected modules, or null when none was projected (or none has a ratio). */
export function projectedNormRange(report: { readonly modules: ReadonlyArray<Pick<SafeLoraReport["modules"][number], "projected" | "normRatio">> }): { min: number; max: number } | null {
  const ratios = report.modules.flatMap((m) => (m.projected && m.normRatio !== null ? [m.normRatio] : []));
  return ratios.length === 0 ? null : { min: Math.min(...ratios), max: Math.max(...ratios) };
}

/** Whether the report warns that more than half of the modules were projected (projection/selection.ts decides). */
export function projectsMost(report: SafeLoraReport): boolean {
  return report.warnings?.includes("projects-most-modules") ?? false;
}

/** A prominent line when the selection projected more than half of the modules. */
export function majorityWarning(report: SafeLoraReport): string | null {
  if (!projectsMost(report)) return null;
  return (
    `> **⚠️ ${report.projectedCount} of ${report.moduleCount} modules projected — more than half of the adapter.** ` +
    "Most of the fine-tune is removed in this variant, so it may no longer do what the adapter was trained for. " +
    `A smaller selection (e.g. the default, \`${formatSelection(DEFAULT_SELECTION)}\`) keeps more of it.`
  );
}

/** "What was given up", in numbers and in words. */
export function givenUp(report: SafeLoraReport): string {
  const kept = report.moduleCount - report.projectedCount;
  const range = projectedNormRange(report);
  if (report.projectedCount === 0 || range === null) {
    return `**What was given up:** nothing — no module was projected (0 of ${report.moduleCount}), so this variant's weights equal the adapter's.`;
  }
  const share = range.min === range.max ? `${percent(range.min)} %` : `${percent(range.min)}–${percent(range.max)} %`;
  const what = report.projectedCount === 1 ? "the projected module keeps" : "the projected modules keep";
  // C rescales rather than projects: σᵢ²/‖V‖_F can exceed 1, and then "removed" would be the wrong word.
  const meaning =
    range.max < 0.5
      ? "the fine-tuned update is mostly removed, so they act close to the aligned model"
      : "the fine-tuned update is rescaled along the alignment direction by the factors above";
  return (
    `**What was given up:** ${report.projectedCount} of ${report.moduleCount} modules projected; ${what} ${share} of ` +
    `their update's norm (‖CB‖/‖B‖). In words: in those modules ${meaning}; ` +
    `${kept === 0 ? "no module keeps its update untouched" : `the other ${kept} ${kept === 1 ? "module keeps its" : "keep their"} update untouched`}.`
  );
}

const RULE_WORDS: Record<string, string> = {
  explicit: "given explicitly (`--base`/`--aligned`, or `pair:` in `safe-lora.yaml`)",
  registry: "from this tool's registry of known pairs",
  "model-tree": "chosen from the aligned model's card (its `base_model`, the Hub's model tree) — see the warning above",
  "adapter-config": "from the adapter's `base_model_name_or_path`",
  "adapter-card": "from the adapter card's `base_model`",
  "finetune-card": "from the fine-tune card's `base_model`",
};

/**
 * How an input was found, in words. `resolvedBy` is a rule name, possibly followed by a note naming repos
 * ("adapter-config (x is a copy of y)"): the rule is looked up, the rest is outside text and escaped.
 */
export function resolvedByWords(resolvedBy: string): string {
  const match = /^([\w-]+)(.*)$/s.exec(resolvedBy.trim());
  const rule = match?.[1] ?? "";
  const words = RULE_WORDS[rule];
  if (!words) return escapeMarkdown(resolvedBy);
  const note = match?.[2]?.trim();
  return note ? `${words} ${escapeMarkdown(note)}` : words;
}

export function isModelTreeChoice(input: Input): boolean {
  return input.resolvedBy.trim().startsWith("model-tree");
}

/** `org/name` @ `sha` — the revision whole, since it is what a reviewer compares against the Hub. */
export function pinnedInput(input: Input): string {
  return input.revision ? `${code(input.location)} @ ${code(input.revision)}` : `${code(input.location)} (local folder)`;
}

/** The pair as two list items: which model, at which revision, found how. */
export function pairLines(report: WithPair): string {
  const line = (role: string, input: Input) => `- **${role}:** ${pinnedInput(input)} — ${resolvedByWords(input.resolvedBy)}`;
  return [line("Aligned", report.inputs.aligned), line("Base (unaligned)", report.inputs.base)].join("\n");
}

/**
 * A prominent line when a model card chose part of the pair: `V` — and so every cosine — depends on it, and the
 * card is outside the adapter owner's control.
 */
export function modelTreeWarning(report: WithPair): string | null {
  const picked = (["base", "aligned"] as const).filter((role) => isModelTreeChoice(report.inputs[role]));
  if (picked.length === 0) return null;
  const which = picked.map((role) => `${role === "base" ? "base" : "aligned"} model ${code(report.inputs[role].location)}`).join(" and the ");
  return (
    `> **⚠️ The ${which} was chosen from the aligned model's card, which anyone who can edit that card can change — check it.** ` +
    "It must be the unaligned release of the same model family; if it is not, every cosine here is meaningless. " +
    "To fix the pair, set `pair:` in `safe-lora.yaml` (bot) or pass `--base` (CLI)."
  );
}

/**
 * Bytes read per source. A cache hit reads no base or aligned byte: "0 B" alone would read as "never read",
 * so the alignment cache is named as the source.
 */
export function bytesReadText(report: SafeLoraReport): string {
  const { bytesRead, alignmentCache } = report;
  const modelBytes = (role: "base" | "aligned") => formatBytes(bytesRead[role]);
  let cacheNote = "";
  if (alignmentCache && alignmentCache.hits > 0) {
    const total = alignmentCache.hits + alignmentCache.misses;
    cacheNote =
      alignmentCache.misses === 0 ? " (from the alignment cache)" : ` (${alignmentCache.hits} of ${total} modules from the alignment cache)`;
  }
  return `base ${modelBytes("base")}, aligned ${modelBytes("aligned")}${cacheNote}, adapter ${formatBytes(bytesRead.adapter)}`;
}
