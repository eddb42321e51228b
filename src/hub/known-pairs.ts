import { z } from "zod";
import registry from "./known-pairs.json" with { type: "json" };

const KnownPair = z.object({
  family: z.string(),
  base: z.string(),
  aligned: z.string(),
  alignedAliases: z.array(z.string()).optional(),
  baseAliases: z.array(z.string()).optional(),
});
const Registry = z.object({ reuploaders: z.array(z.string()), pairs: z.array(KnownPair) });
export type KnownPair = z.infer<typeof KnownPair>;

const REGISTRY = Registry.parse(registry);

/** Suffixes that re-uploads give quantized copies; such a copy is never a source of V. */
const QUANTIZED_SUFFIX = /[-_.](unsloth[-_])?(bnb[-_]?[48]bit|[48]bit|gptq|awq|gguf|exl2|int[48]|fp8|nf4|mlx)([-_.].*)?$/i;

export function looksQuantized(id: string): boolean {
  return QUANTIZED_SUFFIX.test(id.slice(id.indexOf("/") + 1));
}

const tail = (id: string) => id.slice(id.indexOf("/") + 1).toLowerCase();
const owner = (id: string) => id.slice(0, id.indexOf("/"));

export interface RegistryMatch {
  readonly pair: KnownPair;
  /** Which side of the pair the id names. */
  readonly side: "aligned" | "base";
  /** True when the id was a renamed id or a re-upload, not the original. */
  readonly viaAlias: boolean;
}

/**
 * Finds the registry pair an id belongs to: the original ids, their aliases, and re-uploads by trusted
 * re-uploaders under the original's name (quantization suffixes stripped), compared without case.
 */
export function findKnownPair(id: string): RegistryMatch | null {
  const lower = id.toLowerCase();
  const stripped = id.slice(0, id.indexOf("/") + 1) + id.slice(id.indexOf("/") + 1).replace(QUANTIZED_SUFFIX, "");
  const reupload = REGISTRY.reuploaders.some((name) => name.toLowerCase() === owner(id).toLowerCase());
  for (const pair of REGISTRY.pairs) {
    for (const side of ["aligned", "base"] as const) {
      const original = pair[side];
      const aliases = (side === "aligned" ? pair.alignedAliases : pair.baseAliases) ?? [];
      if (original.toLowerCase() === lower) return { pair, side, viaAlias: false };
      if ([...aliases].some((alias) => alias.toLowerCase() === lower || alias.toLowerCase() === stripped.toLowerCase())) return { pair, side, viaAlias: true };
      if (reupload && [original, ...aliases].some((name) => tail(name) === tail(stripped))) return { pair, side, viaAlias: true };
    }
  }
  return null;
}

export function knownPairs(): readonly KnownPair[] {
  return REGISTRY.pairs;
}
