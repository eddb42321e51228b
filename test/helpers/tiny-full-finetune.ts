import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LlamaShape } from "../../src/llama/llama-config.js";
import { layerWeight, llamaWeightSlots } from "../../src/llama/llama-weights.js";
import { encodeFromFloat32 } from "../../src/safetensors/dtype.js";
import { writeSafetensors, type TensorToWrite } from "../../src/safetensors/write.js";
import { shardCheckpoint } from "./shard.js";

/** 2 layers, hidden 32, 4 query heads over 2 key/value heads (k/v_proj are [16, 32]), MLP 64. */
export const TINY_SHAPE: LlamaShape = { hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 8, vocab: 40, maxPositions: 64 };

/** The module the fine-tune leaves as the aligned model has it (ΔW = 0), and the one alignment left alone (V = 0). */
export const UNCHANGED_BY_FINETUNE = layerWeight(1, "self_attn.o_proj");
export const UNCHANGED_BY_ALIGNMENT = layerWeight(1, "self_attn.k_proj");

export interface TinyFullFinetune {
  readonly base: string;
  readonly aligned: string;
  readonly finetuned: string;
}

export interface TinyFullFinetuneOptions {
  readonly dtype?: "F32" | "BF16";
  /** Split the fine-tune into this many shards with an index, as save_pretrained does (default: one file). */
  readonly finetuneShards?: number;
  /** Changes a fine-tune tensor before it is written (a wrong shape, a missing tensor: return null). */
  readonly editFinetuned?: (tensor: TensorToWrite) => TensorToWrite | null;
}

/** Deterministic values in (-scale, scale), a different sequence per seed (a sine hash: no state, any index). */
function noise(count: number, seed: number, scale: number): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => {
    const x = Math.sin(seed * 12.9898 + i * 78.233) * 43758.5453;
    return scale * (2 * (x - Math.floor(x)) - 1);
  });
}

const isLinear = (name: string) => /_proj\.weight$/.test(name);

/** a₁b₁ᵀ + a₂b₂ᵀ: an alignment difference of rank 2, small in every entry but with a few large directions, as real ones are. */
function lowRank([rows, cols]: readonly number[], seed: number): Float32Array {
  const terms = [0, 1].map((term) => ({ a: noise(rows!, seed * 7 + term, 0.15), b: noise(cols!, seed * 11 + term, 0.15) }));
  return Float32Array.from({ length: rows! * cols! }, (_, i) => terms.reduce((sum, { a, b }) => sum + a[Math.floor(i / cols!)]! * b[i % cols!]!, 0));
}

/**
 * Writes `base/`, `aligned/` and `finetuned/` under `root`: Llama checkpoints of TINY_SHAPE with config.json, as a
 * family's base, its aligned release, and a full fine-tune of the aligned one. The aligned weights are the base's
 * plus V (of rank 2 in the linears); the fine-tune's linears are the aligned ones plus an update that leans on V by a share that grows across
 * modules (so their cosines spread), its other tensors (embeddings, norms, lm_head) differ from the aligned ones too.
 */
export async function writeTinyFullFinetune(root: string, options: TinyFullFinetuneOptions = {}): Promise<TinyFullFinetune> {
  const dtype = options.dtype ?? "F32";
  const dirs = { base: join(root, "base"), aligned: join(root, "aligned"), finetuned: join(root, "finetuned") };
  const models: Record<keyof TinyFullFinetune, TensorToWrite[]> = { base: [], aligned: [], finetuned: [] };
  llamaWeightSlots(TINY_SHAPE).forEach((slot, index) => {
    const count = slot.dims.reduce((a, b) => a * b, 1);
    const base = noise(count, 4 * index + 1, 0.05);
    const v = slot.name === UNCHANGED_BY_ALIGNMENT ? new Float32Array(count) : isLinear(slot.name) ? lowRank(slot.dims, 4 * index + 2) : noise(count, 4 * index + 2, 0.01);
    const aligned = base.map((value, i) => value + v[i]!);
    const lean = (index % 5) / 4;
    const update = isLinear(slot.name) ? noise(count, 4 * index + 3, 0.01).map((value, i) => (1 - lean) * value + lean * v[i]!) : noise(count, 4 * index + 3, 0.001);
    const finetuned = slot.name === UNCHANGED_BY_FINETUNE ? aligned : aligned.map((value, i) => value + update[i]!);
    const tensor = (values: Float32Array): TensorToWrite => ({ name: slot.name, dtype, shape: slot.dims, data: encodeFromFloat32(values, dtype) });
    models.base.push(tensor(base));
    models.aligned.push(tensor(aligned));
    const edited = options.editFinetuned ? options.editFinetuned(tensor(finetuned)) : tensor(finetuned);
    if (edited) models.finetuned.push(edited);
  });
  const { hidden, intermediate, layers, heads, kvHeads, vocab, maxPositions } = TINY_SHAPE;
  const config = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    vocab_size: vocab,
    max_position_embeddings: maxPositions,
    torch_dtype: dtype === "F32" ? "float32" : "bfloat16",
  };
  for (const key of ["base", "aligned", "finetuned"] as const) {
    mkdirSync(dirs[key], { recursive: true });
    await writeSafetensors(join(dirs[key], "model.safetensors"), { format: "pt" }, models[key]);
    writeFileSync(join(dirs[key], "config.json"), `${JSON.stringify(key === "finetuned" ? { ...config, _name_or_path: "finetuned" } : config, null, 2)}\n`);
  }
  if (options.finetuneShards !== undefined) await shardCheckpoint(dirs.finetuned, options.finetuneShards);
  return dirs;
}
