import { mkdirSync, writeFileSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { encodeFromFloat32 } from "../src/safetensors/dtype.js";
import { byteLengthOf, encodeHeader, serializeSafetensors, writeChunks, type TensorLayout, type TensorToWrite } from "../src/safetensors/write.js";

/** Llama-3-8B's shapes: hidden 4096, 32 layers, GQA with 8 KV heads (k/v 1024 × 4096), MLP 14336, vocab 128256. */
export const LLAMA3_8B = { hidden: 4096, layers: 32, kv: 1024, mlp: 14336, vocab: 128256 } as const;
export const TARGETS = ["q_proj", "v_proj"] as const;

/** Every tensor of the real checkpoint, in the alphabetical order save_pretrained lays them out. */
export function llama3Tensors(): TensorLayout[] {
  const { hidden, layers, kv, mlp, vocab } = LLAMA3_8B;
  const tensors: TensorLayout[] = [
    { name: "lm_head.weight", dtype: "BF16", shape: [vocab, hidden] },
    { name: "model.embed_tokens.weight", dtype: "BF16", shape: [vocab, hidden] },
    { name: "model.norm.weight", dtype: "BF16", shape: [hidden] },
  ];
  for (let layer = 0; layer < layers; layer++) {
    const p = `model.layers.${layer}`;
    tensors.push(
      { name: `${p}.input_layernorm.weight`, dtype: "BF16", shape: [hidden] },
      { name: `${p}.mlp.down_proj.weight`, dtype: "BF16", shape: [hidden, mlp] },
      { name: `${p}.mlp.gate_proj.weight`, dtype: "BF16", shape: [mlp, hidden] },
      { name: `${p}.mlp.up_proj.weight`, dtype: "BF16", shape: [mlp, hidden] },
      { name: `${p}.post_attention_layernorm.weight`, dtype: "BF16", shape: [hidden] },
      { name: `${p}.self_attn.k_proj.weight`, dtype: "BF16", shape: [kv, hidden] },
      { name: `${p}.self_attn.o_proj.weight`, dtype: "BF16", shape: [hidden, hidden] },
      { name: `${p}.self_attn.q_proj.weight`, dtype: "BF16", shape: [hidden, hidden] },
      { name: `${p}.self_attn.v_proj.weight`, dtype: "BF16", shape: [kv, hidden] },
    );
  }
  return tensors.sort((a, b) => (a.name < b.name ? -1 : 1));
}

export const isTarget = (name: string) => TARGETS.some((target) => name.endsWith(`.self_attn.${target}.weight`));

/** xorshift32: fast, deterministic bits for synthetic weights. */
function bits(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/**
 * Synthetic bf16 weights of magnitude ~0.01–0.03 with random signs. The aligned model is the base with
 * its lowest mantissa bits perturbed: a small difference, as between a base and its chat release.
 */
function fillWeights(halves: Uint16Array, seed: number, perturbSeed: number | null): void {
  const next = bits(seed);
  const perturb = perturbSeed === null ? null : bits(perturbSeed);
  for (let i = 0; i < halves.length; i++) {
    const r = next();
    let value = (r & 0x8000) | 0x3c00 | (r >>> 25); // sign, exponent 2^-7, 7 mantissa bits
    if (perturb) value ^= perturb() & 0x7;
    halves[i] = value;
  }
}

/** A per-tensor seed from its name, so that base and aligned agree tensor by tensor however they are sharded. */
function seedOf(name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/**
 * Writes one safetensors file listing `tensors`, of which only the targets hold data; the rest of the file is
 * a sparse hole. Skips the work when a file of the right size is already there.
 */
async function writeSparseFile(path: string, tensors: TensorLayout[], aligned: boolean): Promise<number> {
  const header = encodeHeader({ format: "pt" }, tensors);
  const total = header.byteLength + tensors.reduce((sum, t) => sum + byteLengthOf(t), 0);
  const existing = await stat(path).catch(() => null);
  if (existing?.size === total) return total;
  const handle = await open(path, "w");
  try {
    await handle.write(header, 0, header.byteLength, 0);
    let offset = header.byteLength;
    for (const tensor of tensors) {
      const length = byteLengthOf(tensor);
      if (isTarget(tensor.name)) {
        const halves = new Uint16Array(length / 2);
        const seed = seedOf(tensor.name);
        fillWeights(halves, seed, aligned ? seed ^ 0x5bd1e995 : null);
        await handle.write(new Uint8Array(halves.buffer), 0, length, offset);
      }
      offset += length;
    }
    await handle.truncate(total);
  } finally {
    await handle.close();
  }
  return total;
}

export interface WrittenCheckpoint {
  /** Bytes of all files (headers included), as the full checkpoint would be downloaded. */
  readonly size: number;
  /** Bytes of the target tensors' data. */
  readonly targetBytes: number;
  /** Files written, relative to the checkpoint folder. */
  readonly files: string[];
}

/**
 * Writes a Llama-3-8B-shaped bf16 checkpoint whose headers list every tensor of the real one, in one file or
 * in `shards` files with a model.safetensors.index.json, as save_pretrained lays them out. Only the targets
 * hold data, so it costs ~1.3 GB of disk instead of 16 GB.
 */
export async function writeCheckpoint(dir: string, aligned: boolean, shards = 1): Promise<WrittenCheckpoint> {
  mkdirSync(dir, { recursive: true });
  const tensors = llama3Tensors();
  const targetBytes = tensors.filter((t) => isTarget(t.name)).reduce((sum, t) => sum + byteLengthOf(t), 0);
  if (shards === 1) {
    const size = await writeSparseFile(join(dir, "model.safetensors"), tensors, aligned);
    return { size, targetBytes, files: ["model.safetensors"] };
  }
  const budget = tensors.reduce((sum, t) => sum + byteLengthOf(t), 0) / shards;
  const parts: TensorLayout[][] = [[]];
  let filled = 0;
  for (const tensor of tensors) {
    if (filled >= budget * parts.length && parts.length < shards) parts.push([]);
    parts.at(-1)!.push(tensor);
    filled += byteLengthOf(tensor);
  }
  const weightMap: Record<string, string> = {};
  const files: string[] = [];
  let size = 0;
  for (const [index, part] of parts.entries()) {
    const name = `model-${String(index + 1).padStart(5, "0")}-of-${String(parts.length).padStart(5, "0")}.safetensors`;
    size += await writeSparseFile(join(dir, name), part, aligned);
    for (const tensor of part) weightMap[tensor.name] = name;
    files.push(name);
  }
  const index = JSON.stringify({ metadata: { total_size: size }, weight_map: weightMap }, null, 2);
  writeFileSync(join(dir, "model.safetensors.index.json"), index);
  return { size: size + Buffer.byteLength(index), targetBytes, files: [...files, "model.safetensors.index.json"] };
}

/** An r = 8 LoRA adapter on q_proj and v_proj of every layer, fp32, as PEFT saves it; `seed` picks its factors. */
export async function writeAdapter(dir: string, rank = 8, seed = 12345): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const { hidden, layers, kv } = LLAMA3_8B;
  const next = bits(seed);
  const random = (count: number, scale: number) =>
    encodeFromFloat32(Float32Array.from({ length: count }, () => ((next() / 2 ** 32) * 2 - 1) * scale), "F32");
  const tensors: TensorToWrite[] = [];
  for (let layer = 0; layer < layers; layer++) {
    for (const [target, dOut] of [["q_proj", hidden], ["v_proj", kv]] as const) {
      const p = `base_model.model.model.layers.${layer}.self_attn.${target}`;
      tensors.push({ name: `${p}.lora_A.weight`, dtype: "F32", shape: [rank, hidden], data: random(rank * hidden, 0.02) });
      tensors.push({ name: `${p}.lora_B.weight`, dtype: "F32", shape: [dOut, rank], data: random(dOut * rank, 0.01) });
    }
  }
  tensors.sort((a, b) => (a.name < b.name ? -1 : 1));
  const path = join(dir, "adapter_model.safetensors");
  await stat(path).then(
    () => undefined,
    () => writeChunks(path, serializeSafetensors({ format: "pt" }, tensors)),
  );
  writeFileSync(
    join(dir, "adapter_config.json"),
    JSON.stringify({ peft_type: "LORA", r: rank, lora_alpha: 16, target_modules: ["q_proj", "v_proj"], base_model_name_or_path: "meta-llama/Meta-Llama-3-8B-Instruct", task_type: "CAUSAL_LM" }, null, 2),
  );
}
