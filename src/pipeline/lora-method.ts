import { open, type FileHandle } from "node:fs/promises";
import { SafeLoraError } from "../errors.js";
import type { OpenedAdapter } from "../peft/open-adapter.js";
import { baseWeightCandidates, checkRank, DEFAULT_MAX_RANK, type LoraModule } from "../peft/lora-modules.js";
import { alignmentKeyId, type AlignmentCache, type AlignmentKey } from "../projection/alignment-cache.js";
import type { ExecutionProviderChoice } from "../projection/execution-provider.js";
import { formatOperator, type Operator } from "../projection/operator.js";
import type { LoraBytes, PairBytes, ProjectionReply, SubspaceExchange } from "../projection/projection-messages.js";
import type { Alignment, ModuleProjection, SubspaceSource } from "../projection/projection-session.js";
import type { ProjectionThread } from "../projection/projection-thread.js";
import type { OpenedProvider } from "../projection/provider-loading.js";
import { sketchWidth, subspaceTag, type Subspace } from "../projection/subspace-operator.js";
import { effectiveThreshold, formatSelection, isSelected, roundCosine, type Selection } from "../projection/selection.js";
import type { ModuleReport, SkipReason } from "../report/schema.js";
import type { Checkpoint } from "../safetensors/checkpoint.js";
import { encodeFromFloat32, isFloatDtype, type FloatDtype } from "../safetensors/dtype.js";
import type { TensorInfo } from "../safetensors/header.js";
import type { BufferPool } from "../safetensors/scratch-buffer.js";
import { writeSafetensorsFrom } from "../safetensors/write.js";
import { FileByteSource } from "../storage/byte-source.js";
import type { StagingDir } from "../storage/staging-dir.js";
import { TOOL } from "../version.js";
import type { AssembledVariant, PatchMethod } from "./patch-method.js";

export const DEFAULT_MIN_WEIGHT_COSINE = 0.2;

/** What the LoRA method needs of a run. */
export interface LoraRun {
  readonly adapter: OpenedAdapter;
  readonly base: Checkpoint;
  readonly aligned: Checkpoint;
  readonly selection: Selection;
  /** Which operator projects: the paper's C, or the subspace projector P (projection/operator.ts). */
  readonly operator: Operator;
  readonly executionProvider: ExecutionProviderChoice;
  readonly cache: AlignmentCache | null;
  /** The projection thread's warm pairs, within this budget (bytes of V); null: not used by this run. */
  readonly warmPairs: { readonly maxBytes: number } | null;
  readonly minWeightCosine: number;
  readonly limits?: { readonly maxModules?: number; readonly maxRank?: number; readonly maxFetchBytes?: number; readonly maxCacheBytes?: number } | undefined;
  readonly onNotice?: ((message: string) => void) | undefined;
  readonly thread: ProjectionThread;
  readonly pool: BufferPool;
  readonly staging: StagingDir;
}

export interface ModulePlan {
  readonly module: LoraModule;
  readonly baseKey: string;
  readonly a: TensorInfo;
  readonly b: TensorInfo;
  readonly dOut: number;
  readonly dIn: number;
  readonly rank: number;
}

/** Where one module's V comes from: its keys (when its files have content keys), and whether it is warm. */
interface AlignmentSlot {
  readonly key: AlignmentKey;
  /** The warm pairs' id of the key (alignmentKeyId); null when the run does not use them. */
  readonly warmId: string | null;
  /** Held warm by the projection thread, and leased for this run. */
  readonly warm: boolean;
  /** Held warm with the subspace this run's operator needs beside V (so the disk's is not read). */
  readonly subspaceWarm: boolean;
}

/**
 * One module's inputs as read: the LoRA factors, and V held warm by the projection thread, V from the disk cache,
 * or the pair's two weights. `slot`: the module's cache keys, when it has them. `subspace`: the subspace operator's
 * U and σ of V from the disk cache, when it had them and the thread holds none warm.
 */
export type ModuleInput = { readonly lora: LoraBytes; readonly slot: AlignmentSlot | null; readonly subspace: Subspace | null } & (
  | { readonly from: "warm" }
  | { readonly from: "cache"; readonly cached: Alignment }
  | { readonly from: "weights"; readonly pair: PairBytes }
);

/** Modules by where their V came from in a run. */
export interface AlignmentSources {
  /** Held by this process's projection thread: nothing read, decoded or moved for the pair. */
  readonly warm: number;
  /** Read from the disk cache. */
  readonly cache: number;
  /** Computed from the pair's weights, read from their files. */
  readonly weights: number;
  /** Of those read from the cache or the weights, how many the thread kept warm for later runs. */
  readonly keptWarm: number;
}

/** How many modules' U_k each source gave (modules with V = 0 have none). */
function subspaceSourcesOf(outcomes: readonly ModuleOutcome[]): Record<SubspaceSource, number> {
  const counts: Record<SubspaceSource, number> = { warm: 0, cache: 0, computed: 0 };
  for (const { projection } of outcomes) if (projection.subspace) counts[projection.subspace.source] += 1;
  return counts;
}

/** The sketch the subspace operator runs on a module's V: its width and the tag its subspace is kept under; null under the paper operator. */
function subspaceSketch(operator: Operator, plan: ModulePlan): { readonly tag: string; readonly width: number } | null {
  if (operator.kind !== "subspace") return null;
  const width = sketchWidth(operator, plan.dOut, plan.dIn);
  return { tag: subspaceTag(width), width };
}

/** What is kept of one module: its figures (C·B itself waits on disk, in the staging folder). */
export interface ModuleOutcome {
  readonly plan: ModulePlan;
  readonly projection: Omit<ModuleProjection, "projectedB">;
  readonly cosineExact: number | null;
  readonly skipped: SkipReason | null;
  /** Where C·B, encoded in lora_B's dtype, was staged; null for a module without a cosine (never projected). */
  readonly stagedB: { readonly offset: number; readonly length: number } | null;
}

/** Staged C·B of every module, appended as modules finish; the variant's weights are assembled from it. */
const PROJECTED_B = "projected-lora-b.bin";
const WEIGHTS = "adapter_model.safetensors";

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
async function checkLimits(plans: ModulePlan[], base: Checkpoint, aligned: Checkpoint, limits: LoraRun["limits"]): Promise<void> {
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
async function alignmentKey(plan: ModulePlan, base: Checkpoint, aligned: Checkpoint): Promise<AlignmentKey | null> {
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
export function identicalPair(base: { description: string }, aligned: { description: string }): SafeLoraError {
  return new SafeLoraError(
    `${base.description} and ${aligned.description} have the same weights in every module the adapter changes, so there is no alignment direction to restore: ${CHOOSE_A_PAIR}`,
    "not-a-pair",
  );
}

export function cosineOf(projection: Pick<ModuleProjection, "dot" | "updateNormSq" | "vNormSq" | "projectedUpdateNormSq">): { cosineExact: number | null; skipped: SkipReason | null } {
  if (projection.updateNormSq === 0) return { cosineExact: null, skipped: "zero-update" };
  if (projection.vNormSq === 0) return { cosineExact: null, skipped: "zero-alignment" };
  // CΔW = 0 with ΔW ≠ 0: the update is orthogonal to every alignment direction. The reference's
  // cosine_similarity clamps the norm and yields 0 here, so the module counts as least aligned.
  if (projection.projectedUpdateNormSq === 0) return { cosineExact: 0, skipped: null };
  const cosine = projection.dot / Math.sqrt(projection.updateNormSq * projection.projectedUpdateNormSq);
  return { cosineExact: Math.max(-1, Math.min(1, cosine)), skipped: null };
}

/**
 * Safe LoRA on a LoRA adapter: per module, V = W_aligned − W_base, the cosine between CΔW and ΔW and C·B (or PΔW
 * and P·B with the subspace operator), computed in the projection thread; then the selection decides which
 * `lora_B` tensors are replaced by C·B (P·B).
 */
export class LoraMethod implements PatchMethod<ModulePlan, ModuleInput, ModuleOutcome> {
  private opened: OpenedProvider = { provider: "cpu", fallbacks: [] };
  private cache: AlignmentCache | null;
  private readonly slots = new Map<ModulePlan, AlignmentSlot>();
  /** The run's lease on the warm entries it planned with; released when the run closes. */
  private warmLease: number | null = null;
  private readonly cacheUse = { hits: 0, misses: 0 };
  private readonly sources = { warm: 0, cache: 0, weights: 0, keptWarm: 0 };
  private projectedB: FileHandle | null = null;
  private stagedBytes = 0;

  constructor(private readonly run: LoraRun) {
    this.cache = run.cache;
  }

  async plan(): Promise<ModulePlan[]> {
    const { adapter, base, aligned, limits, onNotice } = this.run;
    const plans = await planModules(adapter, base, aligned, limits?.maxRank ?? DEFAULT_MAX_RANK);
    await checkLimits(plans, base, aligned, limits);
    this.opened = await this.run.thread.open(this.run.executionProvider);
    // V's fp32, and U's and σ's Float64 when the operator keeps a subspace of it.
    const cacheBytes = plans.reduce((sum, plan) => sum + plan.dOut * plan.dIn * 4 + (subspaceSketch(this.run.operator, plan)?.width ?? 0) * (plan.dOut + 1) * 8, 0);
    if (this.cache && limits?.maxCacheBytes !== undefined && cacheBytes > limits.maxCacheBytes) {
      onNotice?.(
        `not caching this pair: its alignment data would take ${(cacheBytes / 1e9).toFixed(1)} GB of disk, more than the ${(limits.maxCacheBytes / 1e9).toFixed(1)} GB one job may use (limits.maxDiskGB)`,
      );
      this.cache = null;
    }
    await this.planAlignments(plans);
    this.projectedB = await open(this.run.staging.file(PROJECTED_B), "wx");
    return plans;
  }

  /**
   * Each module's cache keys, when a cache tier is in use and its files have content keys, and which of them the
   * projection thread holds warm: those are leased for the run, so that they are still there when computed.
   */
  private async planAlignments(plans: readonly ModulePlan[]): Promise<void> {
    const { base, aligned, thread } = this.run;
    const warmPairs = this.run.warmPairs && this.run.warmPairs.maxBytes > 0 ? this.run.warmPairs : null;
    if (!this.cache && !warmPairs) return;
    const keys = await Promise.all(plans.map((plan) => alignmentKey(plan, base, aligned)));
    const ids = keys.map((key) => (key && warmPairs ? alignmentKeyId(key) : null));
    let resident: readonly boolean[] = [];
    let subspaceResident: readonly boolean[] = [];
    if (warmPairs) {
      const asking = plans.flatMap((plan, index) => (ids[index] ? [{ id: ids[index], tag: this.subspaceTagOf(plan) }] : []));
      const asked = asking.map(({ id }) => id);
      // Tags only when a disk subspace could be read instead: otherwise the answer changes nothing.
      const tags = this.cache && this.run.operator.kind === "subspace" ? asking.map(({ tag }) => tag) : undefined;
      const lease = await thread.leaseWarm(warmPairs.maxBytes, asked, tags);
      this.warmLease = lease.lease;
      const held = new Set(asked.filter((_, index) => lease.resident[index]));
      const heldWithSubspace = new Set(asked.filter((_, index) => lease.subspaceResident?.[index]));
      resident = ids.map((id) => id !== null && held.has(id));
      subspaceResident = ids.map((id) => id !== null && heldWithSubspace.has(id));
    }
    plans.forEach((plan, index) => {
      const key = keys[index];
      if (key) this.slots.set(plan, { key, warmId: ids[index]!, warm: resident[index] ?? false, subspaceWarm: subspaceResident[index] ?? false });
    });
  }

  /** The tag of the subspace this run's operator needs of a module's V; null under the paper operator. */
  private subspaceTagOf(plan: ModulePlan): string | null {
    return subspaceSketch(this.run.operator, plan)?.tag ?? null;
  }

  /** The module's subspace from the disk cache, when the operator needs one and the thread holds none warm. */
  private async cachedSubspace(plan: ModulePlan, slot: AlignmentSlot | null): Promise<Subspace | null> {
    const sketch = subspaceSketch(this.run.operator, plan);
    if (!this.cache || !slot || slot.subspaceWarm || !sketch) return null;
    return this.cache.getSubspace(slot.key, sketch.tag, { rows: plan.dOut, width: sketch.width });
  }

  async read(plan: ModulePlan): Promise<ModuleInput> {
    const { adapter, base, aligned, pool } = this.run;
    const [aBytes, bBytes] = await Promise.all([adapter.weights.readBytes(plan.module.loraAKey), adapter.weights.readBytes(plan.module.loraBKey)]);
    const { name } = plan.module;
    const lora: LoraBytes = { name, dOut: plan.dOut, dIn: plan.dIn, rank: plan.rank, loraA: { bytes: aBytes, dtype: plan.a.dtype }, loraB: { bytes: bBytes, dtype: plan.b.dtype } };
    const slot = this.slots.get(plan) ?? null;
    // Looked up whatever V's source: V is cheap to form again, the SVD is not, and either entry may have aged out alone.
    const subspace = await this.cachedSubspace(plan, slot);
    if (slot?.warm) return { lora, slot, subspace, from: "warm" };
    if (slot && this.cache) {
      const into = pool.floats(plan.dOut * plan.dIn);
      const cached = await this.cache.getAlignment(slot.key, [plan.dOut, plan.dIn], into);
      if (cached) return { lora, slot, subspace, from: "cache", cached };
      pool.give(into.buffer as ArrayBuffer);
    }
    const [baseInfo, alignedInfo] = await Promise.all([base.info(plan.baseKey), aligned.info(plan.baseKey)]);
    const [wBase, wAligned] = await Promise.all([
      base.readBytes(plan.baseKey, pool.bytes(baseInfo.end - baseInfo.begin)),
      aligned.readBytes(plan.baseKey, pool.bytes(alignedInfo.end - alignedInfo.begin)),
    ]);
    return { lora, slot, subspace, from: "weights", pair: { wBase: { bytes: wBase, dtype: baseInfo.dtype }, wAligned: { bytes: wAligned, dtype: alignedInfo.dtype } } };
  }

  discard(input: ModuleInput): void {
    const views = input.from === "cache" ? [input.cached.v] : input.from === "weights" ? [input.pair.wBase.bytes, input.pair.wAligned.bytes] : [];
    for (const view of views) this.run.pool.give(view.buffer as ArrayBuffer);
  }

  async computeModule(plan: ModulePlan, input: ModuleInput): Promise<ModuleOutcome> {
    const { thread, pool, base, aligned, minWeightCosine, operator } = this.run;
    const { provider } = this.opened;
    const { slot } = input;
    const subspaceTag = this.subspaceTagOf(plan);
    // A subspace the thread computes (none on disk, none warm) comes back for the disk cache.
    const subspace: SubspaceExchange = { cached: input.subspace, handBack: this.cache !== null && slot !== null && subspaceTag !== null && input.subspace === null };
    let reply: ProjectionReply;
    // A warm hit counts as a cache hit in the report: V came from a cache tier, not from the pair's weights.
    if (input.from === "warm") {
      this.cacheUse.hits += 1;
      this.sources.warm += 1;
      reply = await thread.projectWarm(provider, input.lora, slot!.warmId!, operator, subspace);
    } else if (input.from === "cache") {
      this.cacheUse.hits += 1;
      this.sources.cache += 1;
      reply = await thread.projectWith(provider, input.lora, input.cached, slot!.warmId, operator, subspace);
    } else {
      const toDisk = slot && this.cache ? slot.key : null;
      if (slot) this.cacheUse.misses += 1;
      this.sources.weights += 1;
      reply = await thread.project(provider, input.lora, input.pair, toDisk ? pool.floats(plan.dOut * plan.dIn) : null, slot?.warmId ?? null, operator, subspace);
      if (toDisk) await this.cache!.putAlignment(toDisk, [plan.dOut, plan.dIn], reply.alignment!);
    }
    if (reply.subspace && subspace.handBack) await this.cache!.putSubspace(slot!.key, subspaceTag!, reply.subspace);
    if (reply.kept) this.sources.keptWarm += 1;
    for (const buffer of [...reply.buffers, ...(reply.alignment ? [reply.alignment.v.buffer as ArrayBuffer] : [])]) pool.give(buffer);
    const { projectedB, ...figures } = reply.projection;
    checkPair(plan, reply.projection, base, aligned, minWeightCosine);
    const { cosineExact, skipped } = cosineOf(reply.projection);
    let stagedB: ModuleOutcome["stagedB"] = null;
    if (cosineExact !== null) {
      // Closed: the run failed or stopped while this module was computing, and its outcome is not wanted.
      if (!this.projectedB) throw new Error("the run ended while this module was computing");
      const bytes = encodeFromFloat32(projectedB, plan.b.dtype as FloatDtype);
      // Its place is taken before the write, which the next module's may overtake.
      stagedB = { offset: this.stagedBytes, length: bytes.byteLength };
      this.stagedBytes += bytes.byteLength;
      await writeAt(this.projectedB, bytes, stagedB.offset);
    }
    return { plan, projection: figures, cosineExact, skipped, stagedB };
  }

  async assemble(outcomes: readonly ModuleOutcome[]): Promise<AssembledVariant> {
    const { adapter, base, aligned, selection, operator, staging } = this.run;
    await this.cache?.evict();
    if (outcomes.length > 0 && outcomes.every(({ projection }) => projection.vNormSq === 0)) throw identicalPair(base, aligned);

    const rounded = outcomes.flatMap((outcome) => (outcome.cosineExact === null ? [] : [roundCosine(outcome.cosineExact)]));
    const threshold = effectiveThreshold(selection, rounded);
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
        ...(projection.subspace
          ? { subspaceRank: projection.subspace.rank, capturedEnergy: projection.subspace.capturedEnergy, subspaceCapped: projection.subspace.capped }
          : {}),
      };
    });
    const projectedCount = modules.filter((module) => module.projected).length;
    const metadata = {
      ...adapter.weights.header.metadata,
      "safe_lora.version": TOOL.version,
      "safe_lora.selection": formatSelection(selection),
      // Only when it is not the paper's, so that a paper variant's weights stay byte for byte what they were.
      ...(operator.kind === "paper" ? {} : { "safe_lora.operator": formatOperator(operator) }),
      "safe_lora.threshold": String(threshold),
      "safe_lora.projected": `${projectedCount}/${modules.length}`,
    };

    // Every tensor of the input in its order; only projected lora_B tensors come from the staged C·B.
    const replacements = new Map<string, { offset: number; length: number }>();
    outcomes.forEach(({ plan, stagedB }, index) => {
      if (modules[index]!.projected && stagedB) replacements.set(plan.b.name, stagedB);
    });
    await this.close();
    const weightsPath = staging.file(WEIGHTS);
    const stagedB = await FileByteSource.open(staging.file(PROJECTED_B));
    try {
      await writeSafetensorsFrom(weightsPath, metadata, [...adapter.weights.header.tensors.values()], async (tensor) => {
        const staged = replacements.get(tensor.name);
        return staged ? stagedB.read(staged.offset, staged.length) : adapter.weights.readBytes(tensor.name);
      });
    } finally {
      await stagedB.close();
    }
    await staging.delete(PROJECTED_B);
    return {
      modules,
      threshold,
      metadata,
      weightsPath,
      provider: this.opened,
      alignmentCache: this.cacheUse.hits + this.cacheUse.misses > 0 ? this.cacheUse : null,
      alignmentSources: { ...this.sources },
      ...(operator.kind === "subspace" ? { subspaceSources: subspaceSourcesOf(outcomes) } : {}),
    };
  }

  async close(): Promise<void> {
    const handle = this.projectedB;
    this.projectedB = null;
    const lease = this.warmLease;
    this.warmLease = null;
    try {
      await handle?.close();
    } finally {
      // A thread that has stopped took its warm pairs (and the lease) with it: nothing left to release.
      if (lease !== null) await this.run.thread.releaseWarm(lease).catch(() => undefined);
    }
  }
}

async function writeAt(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.byteLength; ) done += (await handle.write(bytes, done, bytes.byteLength - done, position + done)).bytesWritten;
}
