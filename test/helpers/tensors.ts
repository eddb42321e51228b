import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsFile } from "../../src/safetensors/safetensors-file.js";
import { decodeToFloat32, encodeFromFloat32 } from "../../src/safetensors/dtype.js";
import type { HeaderMetadata } from "../../src/safetensors/schema.js";
import { writeSafetensors, type TensorToWrite } from "../../src/safetensors/write.js";

/** A file's tensors in layout order, ready to hand back to the writer, and its metadata. */
export async function readForRewrite(path: string): Promise<{ metadata: HeaderMetadata; tensors: TensorToWrite[] }> {
  const file = await SafetensorsFile.openPath(path);
  try {
    const tensors: TensorToWrite[] = [];
    for (const info of file.header.tensors.values()) {
      tensors.push({ name: info.name, dtype: info.dtype, shape: info.shape, data: await file.readBytes(info.name) });
    }
    return { metadata: file.header.metadata, tensors };
  } finally {
    await file.close();
  }
}

/** Every tensor of a safetensors file: header info and raw bytes. */
export async function readAllTensors(path: string) {
  const file = await SafetensorsFile.openPath(path);
  try {
    const tensors = new Map<string, { dtype: string; shape: readonly number[]; bytes: Uint8Array; values: () => Float32Array }>();
    for (const info of file.header.tensors.values()) {
      const bytes = await file.readBytes(info.name);
      tensors.set(info.name, { dtype: info.dtype, shape: info.shape, bytes, values: () => decodeToFloat32(bytes, info.dtype) });
    }
    return { metadata: file.header.metadata, tensors };
  } finally {
    await file.close();
  }
}

/** max |a − b| / max |b|: the error of `a` relative to the scale of the reference `b`. */
export function maxAbsRelative(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return scale === 0 ? diff : diff / scale;
}

/** One LoRA module of a synthetic case: its layer, target (q_proj, v_proj, …), weight shape and rank. */
export interface SyntheticModule {
  readonly layer: number;
  readonly target: string;
  readonly dOut: number;
  readonly dIn: number;
  readonly rank: number;
}

/** Deterministic values in (-scale, scale): a different sequence per seed. */
function values(count: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(count);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = ((x >>> 0) / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

/**
 * Writes a synthetic case under `root` — `base/` and `chat/` (bf16 Llama-style checkpoints with config.json) and
 * `adapter/` (a PEFT LoRA adapter, fp32) — with exactly the modules given, for tests that need more or larger
 * modules than the golden cases hold. The chat weights are the base's plus a small difference, as a fine-tune's are.
 */
export async function writeSyntheticCase(root: string, modules: readonly SyntheticModule[]): Promise<{ base: string; chat: string; adapter: string }> {
  const dirs = { base: join(root, "base"), chat: join(root, "chat"), adapter: join(root, "adapter") };
  for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true });
  const weightName = (m: SyntheticModule) => `model.layers.${m.layer}.self_attn.${m.target}.weight`;
  const sorted = [...modules].sort((a, b) => (weightName(a) < weightName(b) ? -1 : 1));
  const base: TensorToWrite[] = [];
  const chat: TensorToWrite[] = [];
  const adapter: TensorToWrite[] = [];
  sorted.forEach((m, index) => {
    const w = values(m.dOut * m.dIn, 3 * index + 1, 0.05);
    const delta = values(m.dOut * m.dIn, 3 * index + 2, 0.005);
    base.push({ name: weightName(m), dtype: "BF16", shape: [m.dOut, m.dIn], data: encodeFromFloat32(w, "BF16") });
    chat.push({ name: weightName(m), dtype: "BF16", shape: [m.dOut, m.dIn], data: encodeFromFloat32(w.map((v, i) => v + delta[i]!), "BF16") });
    const prefix = `base_model.model.model.layers.${m.layer}.self_attn.${m.target}`;
    adapter.push(
      { name: `${prefix}.lora_A.weight`, dtype: "F32", shape: [m.rank, m.dIn], data: encodeFromFloat32(values(m.rank * m.dIn, 3 * index + 3, 0.02), "F32") },
      { name: `${prefix}.lora_B.weight`, dtype: "F32", shape: [m.dOut, m.rank], data: encodeFromFloat32(values(m.dOut * m.rank, 7 * index + 5, 0.01), "F32") },
    );
  });
  const config = JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama" });
  for (const [dir, tensors] of [[dirs.base, base], [dirs.chat, chat]] as const) {
    await writeSafetensors(join(dir, "model.safetensors"), { format: "pt" }, tensors);
    writeFileSync(join(dir, "config.json"), config);
  }
  adapter.sort((a, b) => (a.name < b.name ? -1 : 1));
  await writeSafetensors(join(dirs.adapter, "adapter_model.safetensors"), { format: "pt" }, adapter);
  const targets = [...new Set(modules.map((m) => m.target))];
  writeFileSync(join(dirs.adapter, "adapter_config.json"), JSON.stringify({ peft_type: "LORA", r: modules[0]?.rank ?? 8, lora_alpha: 16, target_modules: targets, task_type: "CAUSAL_LM" }, null, 2));
  return dirs;
}
