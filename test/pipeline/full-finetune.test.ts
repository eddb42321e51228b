import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import { patchFullFinetune, type FullFinetuneRequest } from "../../src/pipeline/patch-full-finetune.js";
import { FullFinetuneReport } from "../../src/report/full-finetune-schema.js";
import { finetuneVariantFiles, writeVariant } from "../../src/pipeline/variant-files.js";
import { roundCosine } from "../../src/projection/selection.js";
import { Checkpoint, SHARD_INDEX } from "../../src/safetensors/checkpoint.js";
import { decodeToFloat32, encodeFromFloat32 } from "../../src/safetensors/dtype.js";
import { SafetensorsFile } from "../../src/safetensors/safetensors-file.js";
import { ShardIndex } from "../../src/safetensors/schema.js";
import { LocalFolder } from "../../src/storage/local-folder.js";
import { UNCHANGED_BY_ALIGNMENT, UNCHANGED_BY_FINETUNE, writeTinyFullFinetune, type TinyFullFinetune, type TinyFullFinetuneOptions } from "../helpers/tiny-full-finetune.js";

let root: string;
let stagingParent: string;
/** The inputs' folders, closed after each test (a run leaves its inputs open for its caller, as patchAdapter does). */
let opened: LocalFolder[];
const folder = (path: string) => {
  const files = new LocalFolder(path);
  opened.push(files);
  return files;
};
beforeEach(() => {
  opened = [];
  root = mkdtempSync(join(tmpdir(), "full-finetune-"));
  stagingParent = join(root, "staging");
  mkdirSync(stagingParent);
});
afterEach(async () => {
  await Promise.all(opened.map((files) => files.close()));
  rmSync(root, { recursive: true, force: true });
});

const request = (models: TinyFullFinetune, extra: Partial<FullFinetuneRequest> = {}): FullFinetuneRequest => ({
  finetuned: { files: folder(models.finetuned), revision: null },
  base: { files: folder(models.base), revision: null },
  aligned: { files: folder(models.aligned), revision: null },
  selection: { mode: "top-k", value: 8 },
  executionProvider: "cpu",
  stagingParent,
  ...extra,
});

/** Every tensor of a checkpoint folder, through the project's own reader, with its stored bytes. */
async function readCheckpoint(dir: string): Promise<Map<string, { dtype: string; shape: readonly number[]; bytes: Uint8Array }>> {
  const checkpoint = await Checkpoint.open(new LocalFolder(dir));
  const tensors = new Map<string, { dtype: string; shape: readonly number[]; bytes: Uint8Array }>();
  for (const name of checkpoint.names()) {
    const info = await checkpoint.info(name);
    tensors.set(name, { dtype: info.dtype, shape: info.shape, bytes: await checkpoint.readBytes(name) });
  }
  await checkpoint.close();
  return tensors;
}

/** W_aligned + V (Vᵀ ΔW) / ‖V‖_F and cos(CΔW, ΔW), in Float64 from the stored values, written out loop by loop. */
function formula(base: Float32Array, aligned: Float32Array, finetuned: Float32Array, dOut: number, dIn: number): { variant: Float64Array; cosine: number } {
  const v = Float64Array.from(aligned, (a, i) => a - base[i]!);
  const delta = Float64Array.from(finetuned, (f, i) => f - aligned[i]!);
  const vNorm = Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
  const vtDelta = new Float64Array(dIn * dIn);
  for (let row = 0; row < dOut; row++) for (let p = 0; p < dIn; p++) for (let q = 0; q < dIn; q++) vtDelta[p * dIn + q]! += v[row * dIn + p]! * delta[row * dIn + q]!;
  const cDelta = new Float64Array(dOut * dIn);
  for (let row = 0; row < dOut; row++) for (let q = 0; q < dIn; q++) for (let p = 0; p < dIn; p++) cDelta[row * dIn + q]! += (v[row * dIn + p]! * vtDelta[p * dIn + q]!) / vNorm;
  let dot = 0;
  let deltaSq = 0;
  let cDeltaSq = 0;
  for (let i = 0; i < delta.length; i++) {
    dot += cDelta[i]! * delta[i]!;
    deltaSq += delta[i]! ** 2;
    cDeltaSq += cDelta[i]! ** 2;
  }
  return { variant: Float64Array.from(aligned, (a, i) => a + cDelta[i]!), cosine: dot / Math.sqrt(deltaSq * cDeltaSq) };
}

async function patchAndWrite(options: TinyFullFinetuneOptions, extra: Partial<FullFinetuneRequest> = {}) {
  const models = await writeTinyFullFinetune(root, options);
  const patched = await patchFullFinetune(request(models, extra));
  const out = join(root, "out");
  await writeVariant(out, finetuneVariantFiles(patched, { alignedHubId: null, license: null, command: "safe-lora patch --finetune …" }));
  await patched.release();
  return { models, report: patched.report, out };
}

/** The variant against the models: projected modules by the formula, every other tensor the fine-tune's bytes. */
async function expectVariant(models: TinyFullFinetune, report: FullFinetuneReport, out: string, closeEnough: (actual: Float32Array, expected: Float64Array, aligned: Float32Array) => void) {
  const [base, aligned, finetuned, variant] = [await readCheckpoint(models.base), await readCheckpoint(models.aligned), await readCheckpoint(models.finetuned), await readCheckpoint(out)];
  expect([...variant.keys()].sort()).toEqual([...finetuned.keys()].sort());
  const values = (tensor: { dtype: string; bytes: Uint8Array }) => decodeToFloat32(tensor.bytes, tensor.dtype as "F32");
  for (const module of report.modules) {
    const name = `${module.name}.weight`;
    const [dOut, dIn] = module.shape;
    if (module.skipped) {
      expect(module.cosine).toBeNull();
    } else {
      const expected = formula(values(base.get(name)!), values(aligned.get(name)!), values(finetuned.get(name)!), dOut, dIn);
      expect(Math.abs(module.cosineExact! - expected.cosine), name).toBeLessThan(1e-6);
      expect(Math.abs(module.cosine! - roundCosine(expected.cosine)), name).toBeLessThanOrEqual(1e-5 + 1e-12);
      if (module.projected) {
        expect(variant.get(name)!.dtype).toBe(finetuned.get(name)!.dtype);
        closeEnough(values(variant.get(name)!), expected.variant, values(aligned.get(name)!));
        continue;
      }
    }
    expect(Buffer.from(variant.get(name)!.bytes).equals(Buffer.from(finetuned.get(name)!.bytes)), name).toBe(true);
  }
  const modules = new Set(report.modules.map((module) => `${module.name}.weight`));
  for (const [name, tensor] of variant) if (!modules.has(name)) expect(Buffer.from(tensor.bytes).equals(Buffer.from(finetuned.get(name)!.bytes)), name).toBe(true);
}

/** Both product orders ran on projected modules: d_in ≤ d_out (q, o, gate, up) and d_out < d_in (k, v, down). */
function expectBothOrdersProjected(report: FullFinetuneReport): void {
  const orders = report.modules.filter((m) => m.projected).map((m) => (m.shape[1] <= m.shape[0] ? "update-first" : "alignment-first"));
  expect(new Set(orders)).toEqual(new Set(["update-first", "alignment-first"]));
}

/** max |actual − expected| / max |expected| over a tensor. */
function relativeError(actual: Float32Array, expected: Float64Array): number {
  let diff = 0;
  let scale = 0;
  expected.forEach((value, i) => {
    diff = Math.max(diff, Math.abs(actual[i]! - value));
    scale = Math.max(scale, Math.abs(value));
  });
  return diff / scale;
}

describe("Safe LoRA on a full fine-tune", () => {
  it("patches an F32 fine-tune into a valid sharded checkpoint whose projected modules are W_aligned + V(VᵀΔW)/‖V‖_F", async () => {
    const { models, report, out } = await patchAndWrite({ finetuneShards: 2 }, { limits: { maxShardBytes: 20_000 } });
    expect(report.kind).toBe("full-finetune");
    expect(report.moduleCount).toBe(14);
    expect(report.projectedCount).toBe(8);
    expect(report.selection.threshold).toBe([...report.modules].flatMap((m) => (m.cosine === null ? [] : [m.cosine])).sort((a, b) => a - b)[7]);
    expectBothOrdersProjected(report);
    expect(report.modules.find((m) => `${m.name}.weight` === UNCHANGED_BY_FINETUNE)).toMatchObject({ cosine: null, skipped: "zero-update", projected: false });
    expect(report.modules.find((m) => `${m.name}.weight` === UNCHANGED_BY_ALIGNMENT)).toMatchObject({ cosine: null, skipped: "zero-alignment", projected: false });
    expect(report.untouchedTensors).toContain("model.embed_tokens.weight");
    expect(report.untouchedTensors).toContain("lm_head.weight");
    expect(report.untouchedTensors).toContain("model.layers.0.input_layernorm.weight");

    // The index covers every tensor exactly once, its total_size is the tensors' bytes, and every shard parses as exactly what the index puts in it.
    const index = ShardIndex.parse(JSON.parse(readFileSync(join(out, SHARD_INDEX), "utf8")));
    const finetuned = await readCheckpoint(models.finetuned);
    expect(Object.keys(index.weight_map).sort()).toEqual([...finetuned.keys()].sort());
    expect(index.metadata).toEqual({ total_size: [...finetuned.values()].reduce((sum, t) => sum + t.bytes.byteLength, 0) });
    const shards = [...new Set(Object.values(index.weight_map))].sort();
    expect(shards.length).toBeGreaterThan(2);
    expect(shards).toEqual(shards.map((_, i) => `model-${String(i + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`));
    expect(report.variant.shards).toEqual(shards);
    for (const shard of shards) {
      const file = await SafetensorsFile.openPath(join(out, shard));
      expect([...file.header.tensors.keys()].sort()).toEqual(Object.keys(index.weight_map).filter((name) => index.weight_map[name] === shard).sort());
      expect(file.header.metadata).toMatchObject({ format: "pt", "safe_lora.projected": "8/14" });
      await file.close();
    }
    expect(readFileSync(join(out, "config.json"), "utf8")).toBe(readFileSync(join(models.finetuned, "config.json"), "utf8"));
    expect(readdirSync(out).sort()).toEqual([...shards, "config.json", SHARD_INDEX, "README.md", "safe-lora-report.json"].sort());
    // The report as written is what the schema reads back, and the card says what the variant is on the Hub.
    expect(FullFinetuneReport.parse(JSON.parse(readFileSync(join(out, "safe-lora-report.json"), "utf8")))).toEqual(report);
    expect(readFileSync(join(out, "README.md"), "utf8")).toMatch(/^---\nlibrary_name: transformers\ntags:\n  - safe-lora\n---\n\n# Safe LoRA variant of a full fine-tune\n/);
    expect(readdirSync(stagingParent)).toEqual([]);

    await expectVariant(models, report, out, (actual, expected, aligned) => {
      expect(relativeError(actual, expected)).toBeLessThan(1e-5);
      // C ΔW itself, the part that is not W_aligned, to the precision fp32 storage of W_aligned + C ΔW leaves it.
      const projected = Float32Array.from(actual, (value, i) => value - aligned[i]!);
      expect(relativeError(projected, Float64Array.from(expected, (value, i) => value - aligned[i]!))).toBeLessThan(1e-4);
    });
  });

  it("patches a BF16 fine-tune, storing projected modules in BF16 as the formula rounds to it", async () => {
    const { models, report, out } = await patchAndWrite({ dtype: "BF16" }, { selection: { mode: "threshold", value: 0.9 } });
    expect(report.projectedCount).toBe(8);
    expectBothOrdersProjected(report);
    await expectVariant(models, report, out, (actual, expected) => {
      // The formula in Float64, rounded to BF16 as the variant stores it: equal, or one BF16 step apart where fp32 compute fell on the other side of a rounding edge.
      const rounded = decodeToFloat32(encodeFromFloat32(Float32Array.from(expected), "BF16"), "BF16");
      rounded.forEach((value, i) => expect(Math.abs(actual[i]! - value)).toBeLessThanOrEqual(Math.abs(value) * 2 ** -7));
      expect(relativeError(actual, expected)).toBeLessThan(2 ** -8);
    });
  });
});

describe("a full fine-tune that cannot be patched", () => {
  it("is refused on the CPU when a module is above the size cap, before anything is read or written", async () => {
    const models = await writeTinyFullFinetune(root);
    const error = await patchFullFinetune(request(models, { limits: { maxCpuModuleElements: 1000 } })).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(SafeLoraError);
    expect((error as SafeLoraError).code).toBe("limit-exceeded");
    const message = (error as SafeLoraError).message;
    expect(message).toContain("10 of 14 modules are too large for a CPU run");
    expect(message).toContain('"model.layers.0.mlp.gate_proj.weight" is [64, 32] (2048 values)');
    expect(message).toContain("above the cap of 1000 values per module on the CPU");
    // The way on is the reader's: a GPU, or a cap raised to the largest module (CLI flag, BOT_CONFIG).
    expect((error as SafeLoraError).fix).toEqual({ kind: "needs-gpu", elements: 2048 });
    expect(readdirSync(stagingParent)).toEqual([]);
  });

  it("counts every tensor of the fine-tune against the job's fetch limit, not only its target modules", async () => {
    const models = await writeTinyFullFinetune(root);
    const bytesOf = async (folder: string, only: (name: string) => boolean) => {
      const file = await SafetensorsFile.openPath(join(folder, "model.safetensors"));
      const bytes = [...file.header.tensors.values()].filter((info) => only(info.name)).reduce((sum, info) => sum + info.end - info.begin, 0);
      await file.close();
      return bytes;
    };
    const isTarget = (name: string) => /^model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/.test(name);
    const needed = (await bytesOf(models.base, isTarget)) + (await bytesOf(models.aligned, isTarget)) + (await bytesOf(models.finetuned, () => true));
    // Embeddings and lm_head are a good part of it: a limit on the target modules alone would let them through.
    expect(await bytesOf(models.finetuned, (name) => !isTarget(name))).toBeGreaterThan(0);
    const refused = await patchFullFinetune(request(models, { limits: { maxFetchBytes: needed - 1 } })).catch((thrown: unknown) => thrown);
    expect(refused).toMatchObject({ code: "limit-exceeded", fix: { kind: "raise-limit", limit: "maxFetchGB" } });
    expect(readdirSync(stagingParent)).toEqual([]);
    const patched = await patchFullFinetune(request(models, { limits: { maxFetchBytes: needed } }));
    await patched.release();
  });

  it("runs on the CPU when every module is within the cap", async () => {
    const models = await writeTinyFullFinetune(root);
    const patched = await patchFullFinetune(request(models, { limits: { maxCpuModuleElements: 2048 } }));
    expect(patched.report.moduleCount).toBe(14);
    await patched.release();
  });

  it("is refused when a module's shape differs from the aligned model's", async () => {
    const models = await writeTinyFullFinetune(root, {
      editFinetuned: (tensor) => (tensor.name === "model.layers.1.mlp.up_proj.weight" ? { ...tensor, shape: [32, 64] } : tensor),
    });
    const error = await patchFullFinetune(request(models)).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(SafeLoraError);
    expect((error as SafeLoraError).code).toBe("shape-mismatch");
    expect((error as SafeLoraError).message).toContain('"model.layers.1.mlp.up_proj.weight" has shape [32,64] in the fine-tune, [64,32] in the aligned model');
    expect(readdirSync(stagingParent)).toEqual([]);
  });

  it("is refused when a weight holds NaN, and stops between modules when its signal aborts, leaving nothing staged", async () => {
    const damaged = await writeTinyFullFinetune(join(root, "damaged"), {
      editFinetuned: (tensor) => {
        if (tensor.name !== "model.layers.1.mlp.down_proj.weight") return tensor;
        const values = decodeToFloat32(tensor.data, "F32");
        values[5] = Number.NaN;
        return { ...tensor, data: encodeFromFloat32(values, "F32") };
      },
    });
    const error = await patchFullFinetune(request(damaged)).catch((thrown: unknown) => thrown);
    expect((error as SafeLoraError).code).toBe("non-finite");
    expect((error as SafeLoraError).message).toContain('"model.layers.1.mlp.down_proj.weight": the base, aligned or fine-tuned weights contain NaN or infinite values');
    expect(readdirSync(stagingParent)).toEqual([]);

    const models = await writeTinyFullFinetune(root);
    const controller = new AbortController();
    const seen: string[] = [];
    const onProgress = ({ module, done }: { module: string; done: number }) => {
      seen.push(module);
      if (done === 3) controller.abort(new SafeLoraError("the job ran out of time", "limit-exceeded"));
    };
    const stopped = await patchFullFinetune(request(models, { signal: controller.signal, onProgress })).catch((thrown: unknown) => thrown);
    expect((stopped as SafeLoraError).message).toBe("the job ran out of time");
    expect(seen.length).toBeLessThan(14);
    expect(readdirSync(stagingParent)).toEqual([]);
  });

  it("is refused when the aligned model lacks a tensor the fine-tune has, or the fine-tune has no decoder linears", async () => {
    const models = await writeTinyFullFinetune(root);
    const extra = await writeTinyFullFinetune(join(root, "other"), { editFinetuned: (tensor) => (tensor.name === "model.layers.0.self_attn.v_proj.weight" ? null : tensor) });
    // A checkpoint without v_proj of layer 0 as the aligned model.
    const missing = await patchFullFinetune(request(models, { aligned: { files: folder(extra.finetuned), revision: null } })).catch((thrown: unknown) => thrown);
    expect(missing).toBeInstanceOf(SafeLoraError);
    expect((missing as SafeLoraError).code).toBe("missing-tensor");
    expect((missing as SafeLoraError).message).toBe(
      `${extra.finetuned} has no tensor "model.layers.0.self_attn.v_proj.weight", which the fine-tune ${models.finetuned} has; name as aligned the model the fine-tune was trained from, and as base the unaligned release of its family`,
    );
    const noLinears = await writeTinyFullFinetune(join(root, "no-linears"), { editFinetuned: (tensor) => (/_proj\.weight$/.test(tensor.name) ? null : tensor) });
    const none = await patchFullFinetune(request(noLinears)).catch((thrown: unknown) => thrown);
    expect((none as SafeLoraError).code).toBe("missing-tensor");
    expect((none as SafeLoraError).message).toContain("has no decoder linear weights");
    expect(readdirSync(stagingParent)).toEqual([]);
  });
});
