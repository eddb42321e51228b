import { createHash } from "node:crypto";
import { SafeLoraError } from "../errors.js";
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, openAdapter, type OpenedAdapter } from "../peft/open-adapter.js";
import { baseWeightCandidates, checkRank, DEFAULT_MAX_RANK, type LoraModule } from "../peft/lora-modules.js";
import type { ExecutionProviderChoice } from "../projection/execution-provider.js";
import type { AlignmentCache } from "../projection/alignment-cache.js";
import type { PatchRecord } from "../report/record.js";
import { ProjectionSession, type ModuleProjection } from "../projection/projection-session.js";
import { effectiveThreshold, isSelected, projectsMostModules, roundCosine, formatSelection, type Selection } from "../projection/selection.js";
import type { FileDigest, HeaderDigest, ModuleReport, SafeLoraReport, SkipReason } from "../report/schema.js";
import { Checkpoint, SHARD_INDEX } from "../safetensors/checkpoint.js";
import { decodeToFloat32, encodeFromFloat32, isFloatDtype, type FloatDtype } from "../safetensors/dtype.js";
import type { TensorInfo } from "../safetensors/header.js";
import type { TensorToWrite } from "../safetensors/write.js";
import { inSubfolder, type RepoFiles } from "../storage/repo-files.js";
import { TOOL } from "../version.js";
import { ScratchBuffer } from "../safetensors/scratch-buffer.js";

/** A transformers model's config, hashed whole for local folders (it is small and says which model this is). */
const MODEL_CONFIG = "config.json";

export const OPERATOR_FORMULA = "C = V Vᵀ / ‖V‖_F with V = W_aligned − W_base (fp32); lora_B ← C·lora_B";

/** One source of model weights: where it is and its files. */
export interface WeightsInput {
  readonly files: RepoFiles;
  /** How the report names it: a local path or a Hub id (default: the files' description). */
  readonly location?: string;
  /** Pinned commit for Hub repos; null for local folders. */
  readonly revision: string | null;
  readonly subfolder?: string;
  /** Which rule chose this model (`explicit`, `registry`, `model-tree`, …), for the report. */
  readonly resolvedBy?: string;
}

export interface PatchRequest {
  readonly adapter: WeightsInput;
  readonly base: WeightsInput;
  readonly aligned: WeightsInput;
  readonly selection: Selection;
  readonly executionProvider: ExecutionProviderChoice;
  /** Where V of pairs seen before is kept; null or absent: no cache. Used only for files with content keys. */
  readonly cache?: AlignmentCache | null;
  /**
   * Below this cosine between W_base and W_aligned in any module, the two are taken for unrelated weights
   * rather than a model and its fine-tune, and the run is refused. Fine-tunes are near 1, unrelated ≈ 0.
   */
  readonly minWeightCosine?: number;
  readonly onProgress?: (progress: PatchProgress) => void;
  /** The bot's record of inputs and settings, stored in the report. */
  readonly record?: PatchRecord;
  /** Stops the run between modules (job time limit, shutdown). */
  readonly signal?: AbortSignal;
  /**
   * Bot job limits: refuse before reading weights when the plan has more modules or weight bytes than these;
   * run without the cache when its entries for this pair would take more disk than `maxCacheBytes`.
   */
  readonly limits?: { readonly maxModules?: number; readonly maxRank?: number; readonly maxFetchBytes?: number; readonly maxCacheBytes?: number };
  /** Told about decisions an operator may want to know of (e.g. a cache skipped for its size). */
  readonly onNotice?: (message: string) => void;
}

export const DEFAULT_MIN_WEIGHT_COSINE = 0.2;

export interface PatchProgress {
  /** Modules done so far, and in all. */
  readonly done: number;
  readonly total: number;
  readonly module: string;
  /** Weight bytes read from base and aligned so far. */
  readonly bytesRead: number;
}

/** A patched adapter, ready to be written to a folder or committed: the new weights, config and report. */
export interface PatchedAdapter {
  readonly report: SafeLoraReport;
  /** `__metadata__` of the patched weights: the input's, plus provenance under `safe_lora.*`. */
  readonly metadata: Record<string, string>;
  /** Every tensor of the input adapter in its original order; only projected `lora_B` tensors differ. */
  readonly tensors: readonly TensorToWrite[];
  /** `adapter_config.json`, byte for byte as the input had it. */
  readonly configText: string;
}

interface ModulePlan {
  readonly module: LoraModule;
  readonly baseKey: string;
  readonly a: TensorInfo;
  readonly b: TensorInfo;
  readonly dOut: number;
  readonly dIn: number;
  readonly rank: number;
}

interface ModuleOutcome {
  readonly plan: ModulePlan;
  readonly projection: ModuleProjection;
  readonly cosineExact: number | null;
  readonly skipped: SkipReason | null;
}

/**
 * Checks everything that can be checked from headers alone — that every module has its base weight in both
 * checkpoints with matching shapes — before a single weight byte is read.
 */
async function planModules(adapter: OpenedAdapter, base: Checkpoint, aligned: Checkpoint, maxRank: number): Promise<ModulePlan[]> {
  const plans: ModulePlan[] = [];
  for (const module of adapter.modules) {
    const candidates = baseWeightCandidates(module.name);
    const baseKey = candidates.find((key) => base.has(key));
    if (!baseKey) {
      throw new SafeLoraError(
        `the base model ${base.description} has no weight for adapter module "${module.name}" (looked for ${candidates.map((c) => `"${c}"`).join(", ")})`,
        "missing-tensor",
        { fix: { kind: "check-pair" } },
      );
    }
    if (!aligned.has(baseKey)) {
      throw new SafeLoraError(
        `the aligned model ${aligned.description} has no tensor "${baseKey}", which the base model has; the two are not the same architecture`,
        "missing-tensor",
      );
    }
    const [baseInfo, alignedInfo] = await Promise.all([base.info(baseKey), aligned.info(baseKey)]);
    for (const info of [baseInfo, alignedInfo]) {
      if (!isFloatDtype(info.dtype)) {
        throw new SafeLoraError(
          `"${baseKey}" is stored as ${info.dtype} in ${info === baseInfo ? base.description : aligned.description}: ` +
            "quantized or integer weights cannot serve as a source of the alignment direction; use the original fp16/bf16/fp32 release",
          "unsupported-dtype",
        );
      }
    }
    if (baseInfo.shape.length !== 2 || String(baseInfo.shape) !== String(alignedInfo.shape)) {
      throw new SafeLoraError(
        `"${baseKey}" has shape [${baseInfo.shape}] in the base model but [${alignedInfo.shape}] in the aligned model; they are not a base/aligned pair of one architecture`,
        "shape-mismatch",
      );
    }
    const [dOut, dIn] = baseInfo.shape as [number, number];
    const a = adapter.weights.info(module.loraAKey);
    const b = adapter.weights.info(module.loraBKey);
    const rank = a.shape[0]!;
    if (a.shape[1] !== dIn || b.shape[0] !== dOut) {
      throw new SafeLoraError(
        `module "${module.name}": lora_A [${a.shape}] and lora_B [${b.shape}] do not fit the model's weight [${baseInfo.shape}]; ` +
          "the adapter was trained on a model of another size",
        "shape-mismatch",
      );
    }
    checkRank(module.name, rank, dOut, dIn, maxRank);
    plans.push({ module, baseKey, a, b, dOut, dIn, rank });
  }
  return plans;
}

/** Refuses a job that would exceed its caps, from headers alone, before any weight byte is read. */
async function checkLimits(plans: ModulePlan[], base: Checkpoint, aligned: Checkpoint, limits: PatchRequest["limits"]): Promise<void> {
  if (!limits) return;
  if (limits.maxModules !== undefined && plans.length > limits.maxModules) {
    throw new SafeLoraError(`the adapter has ${plans.length} LoRA modules, more than the limit of ${limits.maxModules} per job (limits.maxModules)`, "limit-exceeded", {
      fix: { kind: "raise-limit", limit: "maxModules" },
    });
  }
  if (limits.maxFetchBytes !== undefined) {
    let bytes = 0;
    for (const plan of plans) {
      const [b, a] = await Promise.all([base.info(plan.baseKey), aligned.info(plan.baseKey)]);
      bytes += b.end - b.begin + (a.end - a.begin);
    }
    if (bytes > limits.maxFetchBytes) {
      throw new SafeLoraError(
        `patching needs ${(bytes / 1e9).toFixed(1)} GB of base and aligned weights, more than the limit of ${(limits.maxFetchBytes / 1e9).toFixed(1)} GB per job (limits.maxFetchGB)`,
        "limit-exceeded",
        { fix: { kind: "raise-limit", limit: "maxFetchGB" } },
      );
    }
  }
}

/** The cache key of one module's V: the content of the two files holding its weights, and the tensor. */
async function alignmentKey(plan: ModulePlan, base: Checkpoint, aligned: Checkpoint) {
  const [baseFile, alignedFile] = await Promise.all([base.contentKeyOf(plan.baseKey), aligned.contentKeyOf(plan.baseKey)]);
  return baseFile && alignedFile ? { baseFile, alignedFile, tensor: plan.baseKey } : null;
}

/** cos(W_base, W_aligned) from the norms the graph returns: ⟨Wa, Wb⟩ = (‖Wa‖² + ‖Wb‖² − ‖V‖²) / 2. */
export function weightCosine(projection: Pick<ModuleProjection, "vNormSq" | "wBaseNormSq" | "wAlignedNormSq">): number | null {
  const { vNormSq, wBaseNormSq, wAlignedNormSq } = projection;
  if (wBaseNormSq === 0 || wAlignedNormSq === 0) return null;
  return (wBaseNormSq + wAlignedNormSq - vNormSq) / (2 * Math.sqrt(wBaseNormSq * wAlignedNormSq));
}

const CHOOSE_A_PAIR = "choose as base the unaligned release and as aligned the chat/instruct release of one model family";

/**
 * Refuses a "pair" whose weights look unrelated: V would then be noise, not an alignment direction. An all-zero
 * weight has no cosine to compare, and no released model has one: it is refused too, not waved through.
 */
function checkPair(plan: ModulePlan, projection: ModuleProjection, base: Checkpoint, aligned: Checkpoint, minWeightCosine: number): void {
  for (const [normSq, model] of [
    [projection.wBaseNormSq, base],
    [projection.wAlignedNormSq, aligned],
  ] as const) {
    if (normSq === 0) {
      throw new SafeLoraError(
        `"${plan.baseKey}" is all zeros in ${model.description}, which a released model never is, so the two cannot be checked as a pair (a placeholder or damaged checkpoint?); ${CHOOSE_A_PAIR}`,
        "not-a-pair",
      );
    }
  }
  const cosine = weightCosine(projection);
  if (cosine === null || cosine >= minWeightCosine) return;
  const distance = Math.sqrt(projection.vNormSq / projection.wBaseNormSq);
  throw new SafeLoraError(
    `${aligned.description} does not look like a fine-tune of ${base.description}: in "${plan.baseKey}" their weights have cosine ` +
      `${cosine.toFixed(3)} and ‖V‖/‖W_base‖ = ${distance.toFixed(3)} (a model and its fine-tune have a cosine near 1; unrelated weights near 0). ` +
      "Choose the base and aligned releases of one model family",
    "not-a-pair",
  );
}

/**
 * Base and aligned with the same weights in every adapted module: V = 0 everywhere, so a "variant" would change
 * nothing while calling itself Safe LoRA. (V = 0 in some modules only is an alignment that left them alone.)
 */
function identicalPair(base: { description: string }, aligned: { description: string }): SafeLoraError {
  return new SafeLoraError(
    `${base.description} and ${aligned.description} have the same weights in every module the adapter changes, so there is no alignment direction to restore: ${CHOOSE_A_PAIR}`,
    "not-a-pair",
  );
}

function cosineOf(projection: ModuleProjection): { cosineExact: number | null; skipped: SkipReason | null } {
  if (projection.updateNormSq === 0) return { cosineExact: null, skipped: "zero-update" };
  if (projection.vNormSq === 0) return { cosineExact: null, skipped: "zero-alignment" };
  // CΔW = 0 with ΔW ≠ 0: the update is orthogonal to every alignment direction. The reference's
  // cosine_similarity clamps the norm and yields 0 here, so the module counts as least aligned.
  if (projection.projectedUpdateNormSq === 0) return { cosineExact: 0, skipped: null };
  const cosine = projection.dot / Math.sqrt(projection.updateNormSq * projection.projectedUpdateNormSq);
  return { cosineExact: Math.max(-1, Math.min(1, cosine)), skipped: null };
}

async function digest(files: RepoFiles, path: string): Promise<FileDigest> {
  const source = await files.openBytes(path);
  const bytes = await source.read(0, source.size);
  return { path, size: source.size, sha256: createHash("sha256").update(bytes).digest("hex") };
}

/** Hub weight files by the LFS sha256 the Hub keeps as their content key: nothing more is read. */
async function hubDigests(checkpoint: Checkpoint): Promise<FileDigest[]> {
  return (await checkpoint.filesUsed()).flatMap(({ path, size, contentKey }) => (contentKey && /^[0-9a-f]{64}$/.test(contentKey) ? [{ path, size, sha256: contentKey }] : []));
}

/** sha256 of a safetensors file's first 8 + N bytes: its length prefix and JSON header, read again (kilobytes). */
async function headerDigest(files: RepoFiles, path: string): Promise<HeaderDigest> {
  const source = await files.openBytes(path);
  const prefix = await source.read(0, 8);
  const headerLength = Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true));
  const json = await source.read(8, headerLength);
  return { path, size: source.size, headerSha256: createHash("sha256").update(prefix).update(json).digest("hex") };
}

/**
 * What identifies a local model folder without reading its gigabytes: config.json and the shard index hashed whole,
 * each weight file used by its size and header hash (README, "What the report records").
 */
async function localIdentity(checkpoint: Checkpoint, subfolder: string): Promise<{ files: FileDigest[]; weightHeaders: HeaderDigest[] }> {
  const files: FileDigest[] = [];
  for (const name of [MODEL_CONFIG, SHARD_INDEX]) {
    const path = inSubfolder(subfolder, name);
    if (await checkpoint.files.exists(path)) files.push(await digest(checkpoint.files, path));
  }
  const weightHeaders: HeaderDigest[] = [];
  for (const { path } of await checkpoint.filesUsed()) weightHeaders.push(await headerDigest(checkpoint.files, path));
  return { files, weightHeaders };
}

/**
 * Safe LoRA on one adapter: for every LoRA module, V = W_aligned − W_base, the cosine between CΔW and ΔW,
 * and C·B; then the selection decides which `lora_B` tensors are replaced by C·B. Weights are read one
 * module at a time, by byte range, into reused buffers: memory does not grow with the number of modules.
 */
export async function patchAdapter(request: PatchRequest): Promise<PatchedAdapter> {
  const started = performance.now();
  // The same repo at the same commit (or the same folder named twice) needs no weight read to be refused.
  const where = (input: WeightsInput) => `${input.location ?? input.files.description}@${input.revision ?? ""}/${input.subfolder ?? ""}`;
  if (where(request.base) === where(request.aligned)) throw identicalPair(request.base.files, request.aligned.files);
  const adapter = await openAdapter(request.adapter.files, request.adapter.subfolder);
  const base = await Checkpoint.open(request.base.files, request.base.subfolder, request.cache ?? null);
  const aligned = await Checkpoint.open(request.aligned.files, request.aligned.subfolder, request.cache ?? null);
  const plans = await planModules(adapter, base, aligned, request.limits?.maxRank ?? DEFAULT_MAX_RANK);
  await checkLimits(plans, base, aligned, request.limits);
  const session = await ProjectionSession.create(request.executionProvider);

  let cache = request.cache ?? null;
  const cacheBytes = plans.reduce((sum, plan) => sum + plan.dOut * plan.dIn * 4, 0);
  if (cache && request.limits?.maxCacheBytes !== undefined && cacheBytes > request.limits.maxCacheBytes) {
    request.onNotice?.(
      `not caching this pair: its alignment data would take ${(cacheBytes / 1e9).toFixed(1)} GB of disk, more than the ${(request.limits.maxCacheBytes / 1e9).toFixed(1)} GB one job may use (limits.maxDiskGB)`,
    );
    cache = null;
  }
  const minWeightCosine = request.minWeightCosine ?? DEFAULT_MIN_WEIGHT_COSINE;
  const outcomes: ModuleOutcome[] = [];
  const cacheUse = { hits: 0, misses: 0 };
  try {
    const baseScratch = new ScratchBuffer();
    const alignedScratch = new ScratchBuffer();
    for (const plan of plans) {
      if (request.signal?.aborted) {
        const reason: unknown = request.signal.reason;
        if (reason instanceof Error) throw reason;
        throw new SafeLoraError(`stopped after ${outcomes.length} of ${plans.length} modules: ${String(reason ?? "aborted")}`, "limit-exceeded");
      }
      const [aBytes, bBytes] = await Promise.all([adapter.weights.readBytes(plan.module.loraAKey), adapter.weights.readBytes(plan.module.loraBKey)]);
      const lora = {
        name: plan.module.name,
        dOut: plan.dOut,
        dIn: plan.dIn,
        rank: plan.rank,
        loraA: decodeToFloat32(aBytes, plan.a.dtype),
        loraB: decodeToFloat32(bBytes, plan.b.dtype),
      };
      const key = cache ? await alignmentKey(plan, base, aligned) : null;
      const cached = key ? await cache!.getAlignment(key, [plan.dOut, plan.dIn], alignedScratch.floats(plan.dOut * plan.dIn)) : null;
      let projection: ModuleProjection;
      if (cached) {
        cacheUse.hits += 1;
        projection = await session.projectWith(cached, lora);
      } else {
        const [baseInfo, alignedInfo] = await Promise.all([base.info(plan.baseKey), aligned.info(plan.baseKey)]);
        const [baseBytes, alignedBytes] = await Promise.all([
          base.readBytes(plan.baseKey, baseScratch.bytes(baseInfo.end - baseInfo.begin)),
          aligned.readBytes(plan.baseKey, alignedScratch.bytes(alignedInfo.end - alignedInfo.begin)),
        ]);
        const weights = { wBase: baseScratch.decode(baseBytes, baseInfo.dtype), wAligned: alignedScratch.decode(alignedBytes, alignedInfo.dtype) };
        if (key) {
          cacheUse.misses += 1;
          const alignment = await session.alignment({ name: plan.module.name, dOut: plan.dOut, dIn: plan.dIn, ...weights });
          await cache!.putAlignment(key, [plan.dOut, plan.dIn], alignment);
          projection = await session.projectWith(alignment, lora);
        } else {
          projection = await session.project({ ...lora, ...weights });
        }
      }
      checkPair(plan, projection, base, aligned, minWeightCosine);
      outcomes.push({ plan, projection, ...cosineOf(projection) });
      request.onProgress?.({
        done: outcomes.length,
        total: plans.length,
        module: plan.module.name,
        bytesRead: base.bytesRead + aligned.bytesRead,
      });
    }
  } finally {
    await session.release();
  }
  await cache?.evict();
  if (outcomes.length > 0 && outcomes.every(({ projection }) => projection.vNormSq === 0)) throw identicalPair(base, aligned);

  const rounded = outcomes.flatMap((outcome) => (outcome.cosineExact === null ? [] : [roundCosine(outcome.cosineExact)]));
  const threshold = effectiveThreshold(request.selection, rounded);
  const modules: ModuleReport[] = outcomes.map(({ plan, projection, cosineExact, skipped }) => {
    const cosine = cosineExact === null ? null : roundCosine(cosineExact);
    return {
      name: plan.module.name,
      layer: plan.module.layer,
      target: plan.module.target,
      shape: [plan.dOut, plan.dIn],
      rank: plan.rank,
      cosine,
      cosineExact,
      projected: cosine !== null && threshold !== null && isSelected(cosine, threshold),
      skipped,
      normRatio: projection.bNormSq === 0 || skipped ? null : Math.sqrt(projection.projectedBNormSq / projection.bNormSq),
      alignmentDistance: projection.wBaseNormSq === 0 ? null : Math.sqrt(projection.vNormSq / projection.wBaseNormSq),
      weightCosine: weightCosine(projection),
    };
  });

  const replacements = new Map<string, Uint8Array>();
  outcomes.forEach(({ plan, projection }, index) => {
    if (modules[index]!.projected) replacements.set(plan.b.name, encodeFromFloat32(projection.projectedB, plan.b.dtype as FloatDtype));
  });
  const tensors: TensorToWrite[] = [];
  for (const info of adapter.weights.header.tensors.values()) {
    const data = replacements.get(info.name) ?? (await adapter.weights.readBytes(info.name));
    tensors.push({ name: info.name, dtype: info.dtype, shape: info.shape, data });
  }

  // What the run read, before the local folders' identity below is read: that is bookkeeping, not the patch's input.
  const bytesRead = { base: base.bytesRead, aligned: aligned.bytesRead, adapter: adapter.files.bytesRead };
  const at = (name: string) => inSubfolder(adapter.subfolder, name);
  const adapterDigests = [await digest(adapter.files, at(ADAPTER_CONFIG)), await digest(adapter.files, at(ADAPTER_WEIGHTS))];
  const projectedCount = modules.filter((module) => module.projected).length;
  const identity = async (input: WeightsInput, checkpoint: Checkpoint) =>
    input.revision === null ? localIdentity(checkpoint, input.subfolder ?? "") : { files: await hubDigests(checkpoint) };
  const report: SafeLoraReport = {
    schemaVersion: 1,
    method: "safe-lora",
    tool: TOOL,
    createdAt: new Date().toISOString(),
    selection: { mode: request.selection.mode, value: request.selection.value, threshold },
    operator: { formula: OPERATOR_FORMULA, executionProvider: session.executionProvider },
    modules,
    projectedCount,
    moduleCount: modules.length,
    untouchedTensors: [...adapter.untouched],
    bytesRead,
    inputs: {
      adapter: { location: request.adapter.location ?? request.adapter.files.description, revision: request.adapter.revision, resolvedBy: request.adapter.resolvedBy ?? "explicit", files: adapterDigests },
      base: { location: request.base.location ?? request.base.files.description, revision: request.base.revision, resolvedBy: request.base.resolvedBy ?? "explicit", ...(await identity(request.base, base)) },
      aligned: { location: request.aligned.location ?? request.aligned.files.description, revision: request.aligned.revision, resolvedBy: request.aligned.resolvedBy ?? "explicit", ...(await identity(request.aligned, aligned)) },
    },
    durationMs: Math.round(performance.now() - started),
    ...(projectsMostModules(projectedCount, modules.length) ? { warnings: ["projects-most-modules" as const] } : {}),
    ...(cacheUse.hits + cacheUse.misses > 0 ? { alignmentCache: cacheUse } : {}),
    ...(request.record ? { record: request.record } : {}),
  };
  const metadata = {
    ...adapter.weights.header.metadata,
    "safe_lora.version": TOOL.version,
    "safe_lora.selection": formatSelection(request.selection),
    "safe_lora.threshold": String(threshold),
    "safe_lora.projected": `${projectedCount}/${modules.length}`,
  };
  return { report, metadata, tensors, configText: adapter.configText };
}
