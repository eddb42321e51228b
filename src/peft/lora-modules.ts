import { SafeLoraError } from "../errors.js";

/**
 * The largest LoRA rank patched unless an operator sets `limits.maxRank`: the projection holds r × r Gram
 * matrices and d × r products, so memory grows with r². Trained adapters use ranks of 4 to 256.
 */
export const DEFAULT_MAX_RANK = 1024;

/**
 * Refuses a module whose rank cannot be a real LoRA (above min(d_out, d_in): such an update has no more
 * directions than a full weight) or exceeds `maxRank`, from shapes alone, before anything is allocated.
 */
export function checkRank(module: string, rank: number, dOut: number, dIn: number, maxRank: number): void {
  if (rank > Math.min(dOut, dIn)) {
    throw new SafeLoraError(
      `module "${module}" has LoRA rank ${rank}, more than its weight's smaller dimension (${Math.min(dOut, dIn)} of [${dOut}, ${dIn}]); ` +
        "a rank above that adds nothing a full weight could not hold, so this is not a LoRA adapter to patch",
      "unsupported-adapter",
    );
  }
  if (rank > maxRank) {
    throw new SafeLoraError(
      `module "${module}" has LoRA rank ${rank}, more than the limit of ${maxRank} (limits.maxRank; memory grows with the rank squared)`,
      "limit-exceeded",
      { fix: { kind: "raise-limit", limit: "maxRank" } },
    );
  }
}

/** One LoRA-adapted linear module of an adapter, identified by its parsed name. */
export interface LoraModule {
  /** PEFT module path, e.g. `base_model.model.model.layers.0.self_attn.q_proj`. */
  readonly name: string;
  readonly loraAKey: string;
  readonly loraBKey: string;
  /** Transformer block index when the name has one (`layers.7`, `h.7`, `blocks.7`), for ordering and reports. */
  readonly layer: number | null;
  /** The last name component, e.g. `q_proj`. */
  readonly target: string;
}

export interface AdapterTensorLayout {
  /** Modules in layer order; within a layer in block order (q, k, v, o, gate, up, down), then file order. */
  readonly modules: readonly LoraModule[];
  /** Tensors carried over unchanged: LoRA biases, `modules_to_save` copies and anything else not a LoRA factor. */
  readonly untouched: readonly string[];
}

// `name.lora_A.weight`, or `name.lora_A.<adapter>.weight` as PEFT names them in memory.
const LORA_FACTOR = /^(?<module>.+)\.lora_(?<factor>A|B)(?:\.(?<adapter>[^.]+))?\.weight$/;
const LAYER_INDEX = /\.(?:layers|h|blocks|block|layer)\.(\d+)\./;
/** Within a layer, list modules in the order a transformer block applies them, as the model's own code does. */
const BLOCK_ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
const blockRank = (target: string) => {
  const rank = BLOCK_ORDER.indexOf(target);
  return rank === -1 ? BLOCK_ORDER.length : rank;
};

const REFUSED: ReadonlyArray<{ pattern: RegExp; why: string }> = [
  {
    pattern: /\.lora_magnitude_vector(\.|$)/,
    why: "it is a DoRA adapter (lora_magnitude_vector): DoRA rescales weights by a learned magnitude that Safe LoRA's projection does not account for",
  },
  {
    pattern: /\.lora_embedding_[AB](\.|$)/,
    why: "it adapts an embedding layer (lora_embedding_A/B): Safe LoRA is defined for linear layers only",
  },
];

/**
 * Pairs every `lora_A` with its `lora_B` by parsed module name — never by position, which breaks as soon as
 * a file holds biases, DoRA vectors or a subset of layers.
 */
export function parseAdapterTensors(names: Iterable<string>, where: string): AdapterTensorLayout {
  const factors = new Map<string, { a?: string; b?: string; order: number }>();
  const untouched: string[] = [];
  let order = 0;
  for (const key of names) {
    for (const { pattern, why } of REFUSED) {
      if (pattern.test(key)) throw new SafeLoraError(`${where} cannot be patched: ${why} (tensor "${key}")`, "unsupported-adapter");
    }
    const match = LORA_FACTOR.exec(key);
    if (!match?.groups) {
      untouched.push(key);
      continue;
    }
    const { module: name, factor } = match.groups as { module: string; factor: "A" | "B" };
    const entry = factors.get(name) ?? { order: order++ };
    const slot = factor === "A" ? "a" : "b";
    if (entry[slot]) {
      throw new SafeLoraError(
        `${where} holds two lora_${factor} tensors for module "${name}" ("${entry[slot]}" and "${key}"); save one adapter per file`,
        "unsupported-adapter",
      );
    }
    entry[slot] = key;
    factors.set(name, entry);
  }

  const modules: Array<LoraModule & { order: number }> = [];
  for (const [name, { a, b, order: position }] of factors) {
    if (!a || !b) {
      throw new SafeLoraError(
        `${where} has lora_${a ? "A" : "B"} but no lora_${a ? "B" : "A"} for module "${name}"; the adapter file is incomplete`,
        "unsupported-adapter",
      );
    }
    const layerMatch = LAYER_INDEX.exec(`${name}.`);
    modules.push({
      name,
      loraAKey: a,
      loraBKey: b,
      layer: layerMatch ? Number(layerMatch[1]) : null,
      target: name.slice(name.lastIndexOf(".") + 1),
      order: position,
    });
  }
  modules.sort((x, y) => (x.layer ?? -1) - (y.layer ?? -1) || blockRank(x.target) - blockRank(y.target) || x.order - y.order);
  return { modules: modules.map(({ order: _order, ...module }) => module), untouched };
}

/**
 * Candidate names of the base weight a PEFT module adapts. PEFT wraps the model twice
 * (`base_model.model.` + the model's own path), so `base_model.model.model.layers.0.q_proj` adapts
 * `model.layers.0.q_proj.weight`. Some checkpoints drop the outer model prefix; the caller tries each.
 */
export function baseWeightCandidates(moduleName: string): string[] {
  const inner = moduleName.startsWith("base_model.model.") ? moduleName.slice("base_model.model.".length) : moduleName;
  const candidates = [`${inner}.weight`];
  const firstDot = inner.indexOf(".");
  if (firstDot > 0) candidates.push(`${inner.slice(firstDot + 1)}.weight`);
  return candidates;
}
