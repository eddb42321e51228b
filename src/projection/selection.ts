import { z } from "zod";
import { didYouMean } from "../did-you-mean.js";
import { SafeLoraError } from "../errors.js";

/**
 * Which modules to project. One syntax everywhere (CLI, safe-lora.yaml, PR comments):
 * `threshold:<τ>`, `top-k:<k>`, `fraction:<p>`; `parseSelection` also takes the aliases people write in comments.
 */
export const Selection = z.discriminatedUnion("mode", [
  z.object({ mode: z.literal("threshold"), value: z.number().min(-1).max(1) }),
  z.object({ mode: z.literal("top-k"), value: z.number().int().min(1) }),
  z.object({ mode: z.literal("fraction"), value: z.number().gt(0).max(1) }),
]);
export type Selection = z.infer<typeof Selection>;

/**
 * The default: the least aligned tenth of an adapter's modules (at least one). It scales with the adapter,
 * where the official implementation's `top-k:10` projects every module of an adapter with ten or fewer — and a
 * projected `lora_B` typically keeps only a few per cent of its norm. The paper's Llama-2-7B-Chat setting
 * projected 7 of 64 modules (≈ 11 %); README "Choosing the selection" gives the figures and their caveats.
 */
export const DEFAULT_SELECTION: Selection = { mode: "fraction", value: 0.1 };

const RANGES: Record<Selection["mode"], string> = {
  threshold: "a number from -1 to 1, e.g. threshold:0.35",
  "top-k": "a whole number of modules, at least 1, e.g. top-k:10",
  fraction: "a share of modules above 0 and at most 1, e.g. fraction:0.1",
};

export function formatSelection(selection: Selection): string {
  return `${selection.mode}:${selection.value}`;
}

/** The names a mode may be written with: the one syntax's, and the aliases comments have always accepted. */
const MODE_NAMES: Record<string, Selection["mode"]> = {
  threshold: "threshold",
  tau: "threshold",
  τ: "threshold",
  "top-k": "top-k",
  topk: "top-k",
  top_k: "top-k",
  fraction: "fraction",
};

const SYNTAX = "threshold:<τ>, top-k:<k> or fraction:<p> (e.g. threshold:0.35; tau=0.35, top-k=10 and fraction=0.1 work too)";

/**
 * Parses a selection: `threshold:0.35`, `top-k:10`, `fraction:0.1`, or an alias (`tau=0.35`, `threshold=0.35`,
 * `tau:0.35`, `top-k=10`, `fraction=0.1`). The one parser for the CLI, safe-lora.yaml and comments; a misspelt
 * mode is answered with the spelling it most likely meant.
 */
export function parseSelection(text: string): Selection {
  const match = /^\s*([^\s:=]+)\s*[:=]\s*(\S*)\s*$/.exec(text);
  const word = match?.[1]?.toLowerCase();
  const mode = word === undefined ? undefined : MODE_NAMES[word];
  if (!match || !mode) {
    // A bare number is most likely a τ; a misspelt mode keeps the value that was written.
    const bare = /^\s*(-?[\d.]+)\s*$/.exec(text)?.[1];
    const near = word === undefined ? null : didYouMean(word, Object.keys(MODE_NAMES));
    const suggestion = bare !== undefined ? `threshold:${bare}` : near ? `${MODE_NAMES[near]}:${match![2] || "<value>"}` : null;
    throw new SafeLoraError(`"${text.trim()}" is not a selection: ${suggestion ? `did you mean ${suggestion}? Write` : "write"} ${SYNTAX}`, "usage");
  }
  const value = Number(match[2]);
  const parsed = Selection.safeParse({ mode, value });
  if (!parsed.success || match[2] === "" || !Number.isFinite(value)) {
    throw new SafeLoraError(`"${text.trim()}": the ${mode} value must be ${RANGES[mode]}`, "usage");
  }
  return parsed.data;
}

/**
 * Rounds to 5 decimals exactly as the reference does (numpy.round: scale, round half to even, unscale),
 * so that a cosine on a threshold's edge falls on the same side.
 */
export function roundCosine(value: number): number {
  const scaled = value * 1e5;
  let rounded = Math.round(scaled);
  // Math.round rounds halves up; numpy's rint rounds them to even.
  if (rounded - scaled === 0.5 && rounded % 2 !== 0) rounded -= 1;
  return rounded / 1e5;
}

/**
 * The effective threshold τ for a selection over the rounded cosines of the modules that have one.
 * top-k follows the reference: τ is the k-th smallest rounded cosine, then the `≤ τ` rule applies, so
 * ties can add modules. fraction is top-k with k = ⌈p·M⌉. Returns null when no module has a cosine.
 */
export function effectiveThreshold(selection: Selection, roundedCosines: readonly number[]): number | null {
  if (selection.mode === "threshold") return selection.value;
  if (roundedCosines.length === 0) return null;
  const k = selection.mode === "top-k" ? selection.value : fractionToCount(selection.value, roundedCosines.length);
  const sorted = [...roundedCosines].sort((a, b) => a - b);
  return sorted[Math.min(k, sorted.length) - 1]!;
}

/** ⌈p·M⌉, without letting binary fractions (0.1 × 30 = 3.0000000000000004) round a whole number up. */
export function fractionToCount(fraction: number, moduleCount: number): number {
  return Math.max(1, Math.ceil(fraction * moduleCount - 1e-9));
}

/**
 * More than half of the modules projected: the variant then gives up most of its fine-tune (a projected `lora_B`
 * typically keeps a few per cent of its norm). The one rule behind the CLI's warning and the card's and PR's line.
 */
export function projectsMostModules(projectedCount: number, moduleCount: number): boolean {
  return moduleCount > 0 && projectedCount * 2 > moduleCount;
}

/** What `selection` projects over the rounded cosines of the modules that have one: its τ and how many modules. */
export function previewSelection(selection: Selection, roundedCosines: readonly number[]): { threshold: number | null; projectedCount: number } {
  const threshold = effectiveThreshold(selection, roundedCosines);
  return { threshold, projectedCount: threshold === null ? 0 : roundedCosines.filter((cosine) => isSelected(cosine, threshold)).length };
}

/** The reference's rule: a module is projected when its rounded cosine is at most τ. */
export function isSelected(roundedCosine: number, threshold: number): boolean {
  return roundedCosine <= threshold;
}
