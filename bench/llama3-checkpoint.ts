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

/**
 * Writes a Llama-3-8B-shaped bf16 checkpoint whose header lists every tensor of the real one. Only the target
 * tensors hold data; the rest of the file is a sparse hole, so it costs ~1.3 GB of disk instead of 16 GB.
 */
export async function writeCheckpoint(path: string, aligned: boolean): Promise<{ size: number; targetBytes: number }> {
  const tensors = llama3Tensors();
  const header = encodeHeader({ format: "pt" }, tensors);
  const total = header.byteLength + tensors.reduce((sum, t) => sum + byteLengthOf(t), 0);
  const targetBytes = tensors.filter((t) => isTarget(t.name)).reduce((sum, t) => sum + byteLengthOf(t), 0);
  const existing = await stat(path).catch(() => null);
  if (existing?.size === total) return { size: total, targetBytes };

  const handle = await open(path, "w");
  try {
    await handle.write(header, 0, header.byteLength, 0);
    let offset = header.byteLength;
    let seed = 1;
    for (const tensor of tensors) {
      const length = byteLengthOf(tensor);
      if (isTarget(tensor.name)) {
        const halves = new Uint16Array(length / 2);
        fillWeights(halves, seed, aligned ? seed + 7919 : null);
        await handle.write(new Uint8Array(halves.buffer), 0, length, offset);
      }
      offset += length;
      seed++;
    }
    await handle.truncate(total);
  } finally {
    await handle.close();
  }
  return { size: total, targetBytes };
}

/** An r = 8 LoRA adapter on q_proj and v_proj of every layer, fp32, as PEFT saves it. */
export async function writeAdapter(dir: string, rank = 8): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const { hidden, layers, kv } = LLAMA3_8B;
  const next = bits(12345);
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
