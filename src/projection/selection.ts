import { z } from "zod";
import { SafeLoraError } from "../errors.js";

/**
 * Which modules to project. One syntax everywhere (CLI, safe-lora.yaml, PR comments):
 * `threshold:<τ>`, `top-k:<k>`, `fraction:<p>`.
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

/** Parses `threshold:0.35`, `top-k:10` or `fraction:0.1`. */
export function parseSelection(text: string): Selection {
  const match = /^\s*(threshold|top-k|fraction)\s*:\s*(\S+)\s*$/.exec(text);
  if (!match) {
    throw new SafeLoraError(
      `"${text}" is not a selection; write threshold:<τ>, top-k:<k> or fraction:<p> (e.g. threshold:0.35)`,
      "usage",
    );
  }
  const mode = match[1] as Selection["mode"];
  const value = Number(match[2]);
  const parsed = Selection.safeParse({ mode, value });
  if (!parsed.success || match[2] === "" || !Number.isFinite(value)) {
    throw new SafeLoraError(`"${text}": the ${mode} value must be ${RANGES[mode]}`, "usage");
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

/** The reference's rule: a module is projected when its rounded cosine is at most τ. */
export function isSelected(roundedCosine: number, threshold: number): boolean {
  return roundedCosine <= threshold;
}
