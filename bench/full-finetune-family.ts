// A base model, its aligned release and a full fine-tune of the aligned one, with Llama-3-8B's module shapes, for
// bench/full-finetune-modules.ts. Values are made from each element's index (no state), so each model is written
// a tensor at a time and memory holds one tensor, however many layers: the three models agree element by element
// without ever being in memory together.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LlamaShape } from "../src/llama/llama-config.js";
import { llamaWeightSlots, type WeightSlot } from "../src/llama/llama-weights.js";
import { encodeFromFloat32 } from "../src/safetensors/dtype.js";
import { writeSafetensorsFrom, type TensorLayout } from "../src/safetensors/write.js";

/**
 * Llama-3-8B's sizes (hidden 4096, MLP 14336, 32 heads over 8 KV heads of 128) but `layers` decoder layers and a
 * vocabulary of 256 instead of 128256: the embeddings and lm_head are no target, and at full size would be
 * 2 × 1 GB of bf16 per model on disk for nothing.
 */
export function llama3Shape(layers: number): LlamaShape {
  return { hidden: 4096, intermediate: 14336, layers, heads: 32, kvHeads: 8, headDim: 128, vocab: 256, maxPositions: 8192 };
}

export type FamilyDtype = "BF16" | "F32";

export interface FamilyFolders {
  readonly base: string;
  readonly aligned: string;
  readonly finetuned: string;
}

type Model = keyof FamilyFolders;

/** A value in [-1, 1) for element `index` of the sequence `seed`: murmur3's finaliser over both. */
function unit(seed: number, index: number): number {
  let h = (Math.imul(index, 0x9e3779b1) + Math.imul(seed, 0x85ebca77)) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 31 - 1;
}

function scaled(count: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = scale * unit(seed, i);
  return out;
}

const isLinear = (slot: WeightSlot) => slot.dims.length === 2 && slot.name.endsWith("_proj.weight");

/**
 * One tensor of one model, in fp32. Base: noise of 0.05. Aligned: base + V, where V of a linear is a rank-2 sum
 * a₁b₁ᵀ + a₂b₂ᵀ (a few large directions, as alignment differences have; elsewhere noise of 0.01). Fine-tune:
 * aligned + an update that is noise mixed with V by a share that steps with the slot (0, ¼, ½, ¾, 1), so the
 * modules' cosines spread from near 0 (an update unrelated to alignment) to 1 (one along it) — the tiny test
 * family's recipe, at size.
 */
function values(model: Model, slot: WeightSlot, index: number): Float32Array {
  const rows = slot.dims[0]!;
  const cols = slot.dims[1] ?? 1;
  const out = scaled(rows * cols, 4 * index + 1, 0.05);
  if (model === "base") return out;
  const linear = isLinear(slot);
  const zeros = new Float32Array(Math.max(rows, cols));
  const factor = (seed: number, count: number) => (linear ? scaled(count, seed, 0.15) : zeros);
  const [a1, a2, b1, b2] = [factor(40_000 + 8 * index, rows), factor(40_001 + 8 * index, rows), factor(50_000 + 8 * index, cols), factor(50_001 + 8 * index, cols)];
  const noiseOfV = linear ? 0 : 0.01;
  const lean = model === "finetuned" && linear ? (index % 5) / 4 : 0;
  const updateNoise = model !== "finetuned" ? 0 : (1 - lean) * (linear ? 0.01 : 0.001);
  for (let row = 0, i = 0; row < rows; row++) {
    const [x1, x2] = [a1[row]!, a2[row]!];
    for (let column = 0; column < cols; column++, i++) {
      const v = x1 * b1[column]! + x2 * b2[column]! + (noiseOfV && noiseOfV * unit(4 * index + 2, i));
      out[i] = out[i]! + v + lean * v + (updateNoise && updateNoise * unit(4 * index + 3, i));
    }
  }
  return out;
}

/** config.json's names for the shape's sizes: llamaShape (src/llama/llama-config.ts) read backwards. */
const CONFIG_FIELDS = {
  hidden_size: "hidden",
  intermediate_size: "intermediate",
  num_hidden_layers: "layers",
  num_attention_heads: "heads",
  num_key_value_heads: "kvHeads",
  head_dim: "headDim",
  vocab_size: "vocab",
  max_position_embeddings: "maxPositions",
} as const satisfies Record<string, keyof LlamaShape>;

/** Llama-3-8B's config.json at `shape`'s sizes. */
function config(shape: LlamaShape, dtype: FamilyDtype, model: Model): string {
  const sizes = Object.fromEntries(Object.entries(CONFIG_FIELDS).map(([key, field]) => [key, shape[field]]));
  const rest = { rms_norm_eps: 1e-5, rope_theta: 500000, tie_word_embeddings: false, torch_dtype: dtype === "F32" ? "float32" : "bfloat16", _name_or_path: `bench-${model}` };
  return `${JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama", ...sizes, ...rest }, null, 2)}\n`;
}

/** Writes `base/`, `aligned/` and `finetuned/` under `root` (model.safetensors and config.json each); returns their folders and bytes written. */
export async function writeFullFinetuneFamily(root: string, shape: LlamaShape, dtype: FamilyDtype): Promise<{ folders: FamilyFolders; bytes: number }> {
  const folders: FamilyFolders = { base: join(root, "base"), aligned: join(root, "aligned"), finetuned: join(root, "finetuned") };
  const slots = llamaWeightSlots(shape);
  const indexOf = new Map(slots.map((slot, index) => [slot.name, index]));
  // save_pretrained's layout: tensors sorted by name.
  const layout: TensorLayout[] = slots.map((slot) => ({ name: slot.name, dtype, shape: slot.dims })).sort((a, b) => (a.name < b.name ? -1 : 1));
  let bytes = 0;
  for (const model of ["base", "aligned", "finetuned"] as const) {
    mkdirSync(folders[model], { recursive: true });
    writeFileSync(join(folders[model], "config.json"), config(shape, dtype, model));
    bytes += await writeSafetensorsFrom(join(folders[model], "model.safetensors"), { format: "pt" }, layout, async (tensor) => {
      const index = indexOf.get(tensor.name)!;
      return encodeFromFloat32(values(model, slots[index]!, index), dtype);
    });
  }
  return { folders, bytes };
}
