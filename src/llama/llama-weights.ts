import { SafeLoraError } from "../errors.js";
import { Checkpoint } from "../safetensors/checkpoint.js";
import { decodeToFloat32, isFloatDtype } from "../safetensors/dtype.js";
import type { RepoFiles } from "../storage/repo-files.js";
import type { LlamaShape } from "./llama-config.js";

/** One weight of the model as the graph takes it: transformers' tensor name and its [rows, cols] (or [n]) shape. */
export interface WeightSlot {
  readonly name: string;
  readonly dims: readonly number[];
}

/** The linear layers of one decoder block that a LoRA adapter may adapt, by their transformers suffix. */
export const ADAPTABLE_LINEARS = [
  "self_attn.q_proj",
  "self_attn.k_proj",
  "self_attn.v_proj",
  "self_attn.o_proj",
  "mlp.gate_proj",
  "mlp.up_proj",
  "mlp.down_proj",
] as const;
export type AdaptableLinear = (typeof ADAPTABLE_LINEARS)[number];

export const EMBEDDING = "model.embed_tokens.weight";
export const FINAL_NORM = "model.norm.weight";
export const LM_HEAD = "lm_head.weight";

export const layerWeight = (layer: number, part: AdaptableLinear | "input_layernorm" | "post_attention_layernorm") => `model.layers.${layer}.${part}.weight`;

/** [d_out, d_in] of a block's linear layer, as nn.Linear stores it. */
export function linearDims(shape: LlamaShape, linear: AdaptableLinear): [number, number] {
  const { hidden, intermediate, heads, kvHeads, headDim } = shape;
  switch (linear) {
    case "self_attn.q_proj":
      return [heads * headDim, hidden];
    case "self_attn.k_proj":
    case "self_attn.v_proj":
      return [kvHeads * headDim, hidden];
    case "self_attn.o_proj":
      return [hidden, heads * headDim];
    case "mlp.gate_proj":
    case "mlp.up_proj":
      return [intermediate, hidden];
    case "mlp.down_proj":
      return [hidden, intermediate];
  }
}

/** The names of the weights a LoRA adapter may adapt (every block's linear layers). */
export function adaptableWeights(shape: LlamaShape): Map<string, [number, number]> {
  const weights = new Map<string, [number, number]>();
  for (let layer = 0; layer < shape.layers; layer++) for (const linear of ADAPTABLE_LINEARS) weights.set(layerWeight(layer, linear), linearDims(shape, linear));
  return weights;
}

/** Every weight LlamaForCausalLM has, with transformers' names and shapes (lm_head listed even when tied). */
export function llamaWeightSlots(shape: LlamaShape): WeightSlot[] {
  const slots: WeightSlot[] = [{ name: EMBEDDING, dims: [shape.vocab, shape.hidden] }];
  for (let layer = 0; layer < shape.layers; layer++) {
    slots.push({ name: layerWeight(layer, "input_layernorm"), dims: [shape.hidden] });
    for (const linear of ADAPTABLE_LINEARS) slots.push({ name: layerWeight(layer, linear), dims: linearDims(shape, linear) });
    slots.push({ name: layerWeight(layer, "post_attention_layernorm"), dims: [shape.hidden] });
  }
  slots.push({ name: FINAL_NORM, dims: [shape.hidden] }, { name: LM_HEAD, dims: [shape.vocab, shape.hidden] });
  return slots;
}

const sameDims = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((dim, i) => dim === b[i]);

/**
 * Reads every weight of the model as fp32, checking names and shapes against config.json first, so a checkpoint
 * of another size fails before anything is decoded. With `tiedEmbeddings`, lm_head is the embedding's tensor.
 * A linear layer's bias in the checkpoint is refused: the graph has none, and ignoring it would change the output.
 * `files` stays open: it is the caller's (Checkpoint.close would close it).
 */
export async function readLlamaWeights(files: RepoFiles, folder: string, shape: LlamaShape, tiedEmbeddings: boolean): Promise<Map<string, Float32Array>> {
  const checkpoint = await Checkpoint.open(files, folder);
  const slots = llamaWeightSlots(shape).filter((slot) => !(tiedEmbeddings && slot.name === LM_HEAD));
  for (const slot of slots) {
    const info = await checkpoint.info(slot.name);
    if (!isFloatDtype(info.dtype)) {
      throw new SafeLoraError(`${checkpoint.description}: "${slot.name}" is stored as ${info.dtype}; the forward pass needs F32, F16, BF16 or F64 weights`, "unsupported-dtype");
    }
    if (!sameDims(info.shape, slot.dims)) {
      throw new SafeLoraError(
        `${checkpoint.description}: "${slot.name}" has shape [${info.shape}] but config.json makes it [${slot.dims}]; the weights are not of the model config.json describes`,
        "shape-mismatch",
      );
    }
    const bias = slot.name.replace(/\.weight$/, ".bias");
    if (slot.dims.length === 2 && checkpoint.has(bias)) {
      throw new SafeLoraError(`${checkpoint.description} holds "${bias}": biased linear layers are not supported by the local forward pass`, "invalid-model-config");
    }
  }
  const weights = new Map<string, Float32Array>();
  for (const slot of slots) {
    const info = await checkpoint.info(slot.name);
    weights.set(slot.name, decodeToFloat32(await checkpoint.readBytes(slot.name), info.dtype));
  }
  if (tiedEmbeddings) weights.set(LM_HEAD, weights.get(EMBEDDING)!);
  return weights;
}
