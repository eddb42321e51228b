import { SafeLoraError } from "../errors.js";
import { cardBaseModels } from "./card-data.js";
import type { HubModelInfo } from "./hub-repo-files.js";
import { findKnownPair, looksQuantized } from "./known-pairs.js";
import { isRepoId } from "./repo-ref.js";

/** How a model of the pair was chosen, as the report records it. */
export type PairRule = "explicit" | "adapter-config" | "adapter-card" | "finetune-card" | "registry" | "model-tree";

export interface PairChoice {
  readonly aligned: { readonly id: string; readonly resolvedBy: string };
  readonly base: { readonly id: string; readonly resolvedBy: string };
}

export interface PairQuery {
  /** `base_model_name_or_path` of the adapter's config. */
  readonly adapterBase: string | null | undefined;
  /** The adapter card's front matter, for `base_model`. */
  readonly adapterCard: Record<string, unknown> | null;
  /** What was trained on the aligned model: an adapter (the default) or a full fine-tune, whose card `adapterCard` then is. */
  readonly trained?: "adapter" | "finetune";
  /** Hub ids given explicitly (--aligned / --base, or the repo's config). */
  readonly explicitAligned?: string;
  readonly explicitBase?: string;
  /** Rule 3: may the aligned model's card choose the base? Anyone can write a card. */
  readonly allowModelTree: boolean;
  /** Model info of a Hub repo; rejects with a SafeLoraError when it cannot be read. */
  readonly lookup: (id: string) => Promise<HubModelInfo>;
}

function isQuantizedInfo(info: HubModelInfo): boolean {
  return Boolean((info.config as { quantization_config?: unknown } | null | undefined)?.quantization_config);
}

function quantizedError(id: string, role: string): SafeLoraError {
  return new SafeLoraError(
    `${id} is a quantized checkpoint and cannot serve as the ${role} model: V = W_aligned − W_base needs the original weights`,
    "quantized-source",
    { fix: { kind: "unquantized", role: role === "base" ? "base" : "aligned" } },
  );
}

/** The model tree's base for `info`: the card's `base_model`, else `base_model:finetune:` / `base_model:` tags. */
function treeBases(info: HubModelInfo): string[] {
  const fromCard = cardBaseModels(info.cardData);
  const tags = info.tags ?? [];
  const fromTags = [
    ...tags.filter((tag) => tag.startsWith("base_model:finetune:")).map((tag) => tag.slice("base_model:finetune:".length)),
    ...tags.filter((tag) => /^base_model:[^:]+\/[^:]+$/.test(tag)).map((tag) => tag.slice("base_model:".length)),
  ];
  return [...new Set([...fromCard, ...fromTags])];
}

/**
 * Works out the alignment pair of an adapter. The aligned model: explicit, else the adapter's
 * `base_model_name_or_path`, else its card's `base_model` — mapping known re-uploads to their originals and
 * refusing quantized copies. The unaligned base, in this order: explicit, the registry of known pairs, the
 * Hub model tree (the aligned model's card) when allowed. Each choice says which rule made it.
 */
export async function resolvePair(query: PairQuery): Promise<PairChoice> {
  const aligned = await resolveAligned(query);
  const base = await resolveBase(query, aligned.id);
  return { aligned, base };
}

export async function resolveAligned(query: PairQuery): Promise<PairChoice["aligned"]> {
  if (query.explicitAligned) {
    if (looksQuantized(query.explicitAligned)) throw quantizedError(query.explicitAligned, "aligned");
    const info = await query.lookup(query.explicitAligned);
    if (isQuantizedInfo(info)) throw quantizedError(query.explicitAligned, "aligned");
    return { id: query.explicitAligned, resolvedBy: "explicit" };
  }
  const candidates: Array<{ id: string; rule: PairRule }> = [];
  if (query.adapterBase) candidates.push({ id: query.adapterBase, rule: "adapter-config" });
  const trained = query.trained ?? "adapter";
  for (const id of cardBaseModels(query.adapterCard)) candidates.push({ id, rule: `${trained}-card` });

  const rejected: string[] = [];
  for (const { id, rule } of candidates) {
    const where = rule === "adapter-config" ? "base_model_name_or_path" : "the card's base_model";
    if (!isRepoId(id)) {
      rejected.push(`${where} "${id}" is not a Hub id (a path on the training machine?)`);
      continue;
    }
    const known = findKnownPair(id);
    if (known?.side === "base") {
      throw new SafeLoraError(
        `the ${trained === "adapter" ? "adapter" : "fine-tune"} was trained on ${id}, the unaligned base of ${known.pair.family}: it has no alignment to restore. ` +
          `Safe LoRA is for ${trained === "adapter" ? "adapters" : "fine-tunes"} trained on the aligned model (${known.pair.aligned})`,
        "no-pair",
        { fix: { kind: "name-pair-anyway" } },
      );
    }
    if (known) return { id: known.pair.aligned, resolvedBy: known.viaAlias ? `${rule} (${id} is a copy of ${known.pair.aligned})` : rule };
    if (looksQuantized(id)) {
      rejected.push(`${where} "${id}" is a quantized copy whose original is not in the registry`);
      continue;
    }
    let info: HubModelInfo;
    try {
      info = await query.lookup(id);
    } catch (error) {
      if (error instanceof SafeLoraError && error.code === "hub-not-found") {
        rejected.push(`${where} "${id}" does not exist on the Hub`);
        continue;
      }
      throw error;
    }
    if (isQuantizedInfo(info)) {
      rejected.push(`${where} "${id}" is a quantized checkpoint`);
      continue;
    }
    return { id, resolvedBy: rule };
  }
  const unnamed = trained === "adapter" ? "neither base_model_name_or_path nor the card's base_model names one" : "its README.md card has no base_model";
  const why = rejected.length > 0 ? rejected.join("; ") : unnamed;
  throw new SafeLoraError(
    `cannot tell which aligned model the ${trained === "adapter" ? "adapter" : "fine-tune"} was trained on: ${why}`,
    "no-pair",
    { fix: { kind: "name-aligned" } },
  );
}

export async function resolveBase(query: PairQuery, alignedId: string): Promise<PairChoice["base"]> {
  if (query.explicitBase) {
    if (looksQuantized(query.explicitBase)) throw quantizedError(query.explicitBase, "base");
    const info = await query.lookup(query.explicitBase);
    if (isQuantizedInfo(info)) throw quantizedError(query.explicitBase, "base");
    return { id: query.explicitBase, resolvedBy: "explicit" };
  }
  const known = findKnownPair(alignedId);
  if (known?.side === "aligned") return { id: known.pair.base, resolvedBy: "registry" };
  if (!query.allowModelTree) {
    throw new SafeLoraError(
      `${alignedId} is not in the registry of known pairs, and choosing its base from the Hub model tree is turned off`,
      "no-pair",
      { fix: { kind: "name-base", aligned: alignedId, modelTree: "off" } },
    );
  }
  const info = await query.lookup(alignedId);
  const bases = treeBases(info).filter((id) => id !== alignedId && isRepoId(id));
  // A card may name several bases: one that is missing or may not be read does not stop the others being tried.
  let refused: SafeLoraError | null = null;
  for (const id of bases) {
    if (looksQuantized(id)) continue;
    let baseInfo: HubModelInfo;
    try {
      baseInfo = await query.lookup(id);
    } catch (error) {
      if (!(error instanceof SafeLoraError) || (error.code !== "model-not-allowed" && error.code !== "hub-not-found")) throw error;
      if (error.code === "model-not-allowed") refused ??= error;
      continue;
    }
    if (isQuantizedInfo(baseInfo)) continue;
    return { id, resolvedBy: "model-tree" };
  }
  if (refused) throw refused;
  throw new SafeLoraError(
    `no base model for ${alignedId}: it is not in the registry of known pairs and its card names no usable base_model`,
    "no-pair",
    { fix: { kind: "name-base", aligned: alignedId, modelTree: "none" } },
  );
}
