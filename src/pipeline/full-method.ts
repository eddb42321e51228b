import { open, type FileHandle } from "node:fs/promises";
import { SafeLoraError } from "../errors.js";
import { ADAPTABLE_LINEARS } from "../llama/llama-weights.js";
import type { ExecutionProviderChoice } from "../projection/execution-provider.js";
import type { FullModuleFigures } from "../projection/full-delta-session.js";
import type { ProjectionThread } from "../projection/projection-thread.js";
import type { OpenedProvider } from "../projection/provider-loading.js";
import { effectiveThreshold, formatSelection, isSelected, roundCosine, type Selection } from "../projection/selection.js";
import type { FullModuleReport } from "../report/full-finetune-schema.js";
import type { SkipReason } from "../report/schema.js";
import type { Checkpoint } from "../safetensors/checkpoint.js";
import { encodeFromFloat32, isFloatDtype, type FloatDtype } from "../safetensors/dtype.js";
import type { TensorInfo } from "../safetensors/header.js";
import type { BufferPool } from "../safetensors/scratch-buffer.js";
import { writeShardedSafetensors, type WrittenShards } from "../safetensors/sharded-write.js";
import { FileByteSource } from "../storage/byte-source.js";
import type { StagingDir } from "../storage/staging-dir.js";
import { TOOL } from "../version.js";
import { cosineOf, identicalPair, weightCosine } from "./lora-method.js";
import type { AssembledVariant, PatchMethod } from "./patch-method.js";

/**
 * The largest module (d_out·d_in values) a CPU run takes on. C ΔW costs d_out·d_in·min(d_out, d_in) multiply-adds:
 * one 4096 × 4096 module took 7.7 s on the 2-core development machine (a 2048 × 2048 one 0.6 s), so an 8B model's
 * MLP (14336 × 4096, 3.5 times the work) is refused here: that is a job for a GPU worker.
 */
export const DEFAULT_MAX_CPU_MODULE_ELEMENTS = 4096 * 4096;

/** A full fine-tune's job limits (those of the LoRA path that apply, and the CPU's module size). */
export interface FullFinetuneLimits {
  readonly maxModules?: number;
  /** Base and aligned bytes of the target modules and every tensor byte of the fine-tune, together. */
  readonly maxFetchBytes?: number;
  /** On the CPU provider, the largest d_out·d_in of a module (default DEFAULT_MAX_CPU_MODULE_ELEMENTS). */
  readonly maxCpuModuleElements?: number;
  /** Tensor bytes per shard of the variant (default: transformers' 5 GB). */
  readonly maxShardBytes?: number;
}

/** What the full fine-tune method needs of a run. */
export interface FullRun {
  readonly finetuned: Checkpoint;
  readonly base: Checkpoint;
  readonly aligned: Checkpoint;
  readonly selection: Selection;
  readonly executionProvider: ExecutionProviderChoice;
  readonly minWeightCosine: number;
  readonly limits?: FullFinetuneLimits | undefined;
  readonly pool: BufferPool;
  readonly staging: StagingDir;
  /** Where the modules are computed: onnxruntime's run is synchronous, and the event loop must stay free. */
  readonly thread: ProjectionThread;
}

/** One target module: a decoder layer's linear weight, by its tensor name. */
export interface FullModulePlan {
  /** The tensor, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  readonly tensor: string;
  /** The module path (the tensor name without `.weight`), as the report names it. */
  readonly name: string;
  readonly layer: number;
  /** `q_proj`, …, `down_proj`. */
  readonly target: string;
  readonly dOut: number;
  readonly dIn: number;
  /** The fine-tune's tensor: the variant stores the module in its dtype. */
  readonly finetuned: TensorInfo;
}

/** One module's three weights as stored. */
export interface FullModuleInput {
  readonly wBase: { readonly bytes: Uint8Array; readonly dtype: TensorInfo["dtype"] };
  readonly wAligned: { readonly bytes: Uint8Array; readonly dtype: TensorInfo["dtype"] };
  readonly wFinetuned: { readonly bytes: Uint8Array; readonly dtype: TensorInfo["dtype"] };
}

/** What is kept of one module: its figures; W_aligned + C ΔW, when it may be projected, waits in the staging folder. */
export interface FullModuleOutcome {
  readonly plan: FullModulePlan;
  readonly figures: FullModuleFigures;
  readonly cosineExact: number | null;
  readonly skipped: SkipReason | null;
  readonly staged: { readonly offset: number; readonly length: number } | null;
}


/** What the method hands back: the LoRA shape, with the full fine-tune's own module reports and the shards. */
export interface AssembledFullVariant extends Omit<AssembledVariant, "modules"> {
  readonly modules: readonly FullModuleReport[];
  /** The variant's shards and index in the staging folder; `weightsPath` is the index's path. */
  readonly shards: WrittenShards;
  /** Tensors of the fine-tune copied unchanged: every one that is not a target module, and targets not projected. */
  readonly untouchedTensors: readonly string[];
}

/** `model.layers.<N>.<linear>.weight` for the linears of a decoder layer (the ones LoRA adapts). */
const TARGET = new RegExp(`^model\\.layers\\.(\\d+)\\.(${ADAPTABLE_LINEARS.map((linear) => linear.replace(".", "\\.")).join("|")})\\.weight$`);
/** Staged W_aligned + C ΔW of the modules that may be projected, appended as modules finish. */
const STAGED_VARIANT = "projected-modules.bin";

const CHOOSE_THE_MODELS = "name as aligned the model the fine-tune was trained from, and as base the unaligned release of its family";

function float(info: TensorInfo, checkpoint: Checkpoint): void {
  if (!isFloatDtype(info.dtype)) {
    throw new SafeLoraError(
      `"${info.name}" is stored as ${info.dtype} in ${checkpoint.description}: quantized or integer weights cannot be patched; use the original fp16/bf16/fp32 release`,
      "unsupported-dtype",
    );
  }
}

/** Every target module of the fine-tune, checked against both models from headers alone. */
async function planModules(finetuned: Checkpoint, base: Checkpoint, aligned: Checkpoint): Promise<FullModulePlan[]> {
  const plans: FullModulePlan[] = [];
  for (const tensor of finetuned.names()) {
    const match = TARGET.exec(tensor);
    if (!match) continue;
    for (const model of [aligned, base]) {
      if (!model.has(tensor)) {
        throw new SafeLoraError(`${model.description} has no tensor "${tensor}", which the fine-tune ${finetuned.description} has; ${CHOOSE_THE_MODELS}`, "missing-tensor");
      }
    }
    const [ft, al, ba] = await Promise.all([finetuned.info(tensor), aligned.info(tensor), base.info(tensor)]);
    float(ft, finetuned);
    float(al, aligned);
    float(ba, base);
    if (ft.shape.length !== 2 || String(ft.shape) !== String(al.shape) || String(al.shape) !== String(ba.shape)) {
      throw new SafeLoraError(
        `"${tensor}" has shape [${ft.shape}] in the fine-tune, [${al.shape}] in the aligned model and [${ba.shape}] in the base model; ` +
          `a full fine-tune keeps its model's shapes, so these are not one family: ${CHOOSE_THE_MODELS}`,
        "shape-mismatch",
      );
    }
    const [dOut, dIn] = ft.shape as [number, number];
    plans.push({ tensor, name: tensor.slice(0, -".weight".length), layer: Number(match[1]), target: match[2]!.split(".")[1]!, dOut, dIn, finetuned: ft });
  }
  if (plans.length === 0) {
    throw new SafeLoraError(
      `${finetuned.description} has no decoder linear weights (model.layers.<N>.self_attn.{q,k,v,o}_proj.weight, model.layers.<N>.mlp.{gate,up,down}_proj.weight); point at a Llama-style transformers checkpoint`,
      "missing-tensor",
    );
  }
  return plans;
}

async function checkLimits(plans: readonly FullModulePlan[], run: FullRun): Promise<void> {
  const { limits } = run;
  if (limits?.maxModules !== undefined && plans.length > limits.maxModules) {
    throw new SafeLoraError(`the fine-tune has ${plans.length} target modules, more than the limit of ${limits.maxModules} per job (limits.maxModules)`, "limit-exceeded", {
      fix: { kind: "raise-limit", limit: "maxModules" },
    });
  }
  if (limits?.maxFetchBytes === undefined) return;
  // The pair's target modules, and every tensor of the fine-tune: the variant copies the rest of it (embeddings,
  // lm_head, anything else it holds), so a fine-tune padded with a huge extra tensor is refused here, not fetched.
  let bytes = 0;
  for (const plan of plans) {
    const infos = await Promise.all([run.base.info(plan.tensor), run.aligned.info(plan.tensor)]);
    bytes += infos.reduce((sum, info) => sum + info.end - info.begin, 0);
  }
  for (const name of run.finetuned.names()) {
    const info = await run.finetuned.info(name);
    bytes += info.end - info.begin;
  }
  if (bytes > limits.maxFetchBytes) {
    throw new SafeLoraError(
      `patching needs ${(bytes / 1e9).toFixed(1)} GB of base, aligned and fine-tuned weights, more than the limit of ${(limits.maxFetchBytes / 1e9).toFixed(1)} GB per job (limits.maxFetchGB)`,
      "limit-exceeded",
      { fix: { kind: "raise-limit", limit: "maxFetchGB" } },
    );
  }
}

/**
 * On the CPU a module above the cap would take the run for hours: it is refused, before anything is read,
 * naming the largest module, its cost, the cap and the two ways on.
 */
function checkCpuSize(plans: readonly FullModulePlan[], provider: OpenedProvider, maxElements: number): void {
  if (provider.provider !== "cpu") return;
  const over = plans.filter((plan) => plan.dOut * plan.dIn > maxElements);
  if (over.length === 0) return;
  const largest = over.reduce((a, b) => (b.dOut * b.dIn > a.dOut * a.dIn ? b : a));
  const elements = largest.dOut * largest.dIn;
  const multiplyAdds = elements * Math.min(largest.dOut, largest.dIn);
  throw new SafeLoraError(
    `${over.length} of ${plans.length} modules are too large for a CPU run: "${largest.tensor}" is [${largest.dOut}, ${largest.dIn}] (${elements} values), ` +
      `above the cap of ${maxElements} values per module on the CPU; its C·ΔW alone takes ${multiplyAdds.toExponential(1)} multiply-adds, hours on a CPU`,
    "limit-exceeded",
    { fix: { kind: "needs-gpu", elements } },
  );
}

/**
 * Refuses models that look unrelated in a module (cosine of their weights below `minWeightCosine`): V or ΔW would
 * then be noise. An all-zero weight has no cosine, and no released model has one.
 */
function checkRelated(plan: FullModulePlan, figures: FullModuleFigures, run: FullRun): void {
  const pairs = [
    { from: run.base, to: run.aligned, norms: { vNormSq: figures.vNormSq, wBaseNormSq: figures.wBaseNormSq, wAlignedNormSq: figures.wAlignedNormSq } },
    { from: run.aligned, to: run.finetuned, norms: { vNormSq: figures.updateNormSq, wBaseNormSq: figures.wAlignedNormSq, wAlignedNormSq: figures.wFinetunedNormSq } },
  ];
  for (const { from, to, norms } of pairs) {
    const cosine = weightCosine(norms);
    if (cosine !== null && cosine >= run.minWeightCosine) continue;
    const why = cosine === null ? "one of them is all zeros there, which a released model never is" : `their weights have cosine ${cosine.toFixed(3)} there (a model and its fine-tune are near 1)`;
    throw new SafeLoraError(`${to.description} does not look like a fine-tune of ${from.description} in "${plan.tensor}": ${why}; ${CHOOSE_THE_MODELS}`, "not-a-pair");
  }
}


/**
 * Safe LoRA on a full fine-tune of an aligned model: per decoder linear, ΔW = W_finetuned − W_aligned and
 * V = W_aligned − W_base; the module is projected, W ← W_aligned + C ΔW, when its rounded cos(CΔW, ΔW) is within
 * the selection. Every other tensor is the fine-tune's, byte for byte. The variant is written as a sharded
 * checkpoint from staged files, a tensor at a time.
 */
export class FullMethod implements PatchMethod<FullModulePlan, FullModuleInput, FullModuleOutcome, AssembledFullVariant> {
  private opened: OpenedProvider = { provider: "cpu", fallbacks: [] };
  private stagedVariant: FileHandle | null = null;
  private stagedBytes = 0;
  /** Modules are finished one after the other, in order: each appends its variant to the staged file. */
  private computing: Promise<unknown> = Promise.resolve();

  constructor(private readonly run: FullRun) {}

  async plan(): Promise<FullModulePlan[]> {
    const { finetuned, base, aligned, limits } = this.run;
    const plans = await planModules(finetuned, base, aligned);
    await checkLimits(plans, this.run);
    const provider = await this.run.thread.openFull(this.run.executionProvider);
    this.opened = provider;
    checkCpuSize(plans, provider, limits?.maxCpuModuleElements ?? DEFAULT_MAX_CPU_MODULE_ELEMENTS);
    this.stagedVariant = await open(this.run.staging.file(STAGED_VARIANT), "wx");
    return plans;
  }

  async read(plan: FullModulePlan): Promise<FullModuleInput> {
    const { base, aligned, finetuned, pool } = this.run;
    const [ba, al] = await Promise.all([base.info(plan.tensor), aligned.info(plan.tensor)]);
    const ft = plan.finetuned;
    const [wBase, wAligned, wFinetuned] = await Promise.all([
      base.readBytes(plan.tensor, pool.bytes(ba.end - ba.begin)),
      aligned.readBytes(plan.tensor, pool.bytes(al.end - al.begin)),
      finetuned.readBytes(plan.tensor, pool.bytes(ft.end - ft.begin)),
    ]);
    return { wBase: { bytes: wBase, dtype: ba.dtype }, wAligned: { bytes: wAligned, dtype: al.dtype }, wFinetuned: { bytes: wFinetuned, dtype: ft.dtype } };
  }

  discard(input: FullModuleInput): void {
    for (const { bytes } of [input.wBase, input.wAligned, input.wFinetuned]) this.run.pool.give(bytes.buffer as ArrayBuffer);
  }

  computeModule(plan: FullModulePlan, input: FullModuleInput): Promise<FullModuleOutcome> {
    const outcome = this.computing.then(() => this.computeNow(plan, input));
    this.computing = outcome.catch(() => undefined);
    return outcome;
  }

  private async computeNow(plan: FullModulePlan, input: FullModuleInput): Promise<FullModuleOutcome> {
    // Closed: the run failed or stopped while this module waited, and its outcome is not wanted.
    const { stagedVariant } = this;
    if (!stagedVariant) throw new Error("the run ended before this module was computed");
    const { figures, variant, buffers } = await this.run.thread.fullDelta(this.opened.provider, { name: plan.tensor, dOut: plan.dOut, dIn: plan.dIn, ...input });
    for (const buffer of buffers) this.run.pool.give(buffer);
    checkRelated(plan, figures, this.run);
    const { cosineExact, skipped } = cosineOf(figures);
    let staged: FullModuleOutcome["staged"] = null;
    // A fixed threshold decides now; top-k and fraction only once every cosine is known, so those stage every module.
    const { selection } = this.run;
    const mayBeProjected = cosineExact !== null && (selection.mode !== "threshold" || isSelected(roundCosine(cosineExact), selection.value));
    if (mayBeProjected) {
      const bytes = encodeFromFloat32(variant, plan.finetuned.dtype as FloatDtype);
      staged = { offset: this.stagedBytes, length: bytes.byteLength };
      this.stagedBytes += bytes.byteLength;
      await stagedVariant.appendFile(bytes);
    }
    return { plan, figures, cosineExact, skipped, staged };
  }

  async assemble(outcomes: readonly FullModuleOutcome[]): Promise<AssembledFullVariant> {
    const { finetuned, base, aligned, selection, staging, limits } = this.run;
    if (outcomes.length > 0 && outcomes.every(({ figures }) => figures.vNormSq === 0)) throw identicalPair(base, aligned);
    const rounded = outcomes.flatMap(({ cosineExact }) => (cosineExact === null ? [] : [roundCosine(cosineExact)]));
    const threshold = effectiveThreshold(selection, rounded);
    const modules: FullModuleReport[] = outcomes.map(({ plan, figures, cosineExact, skipped }) => {
      const cosine = cosineExact === null ? null : roundCosine(cosineExact);
      return {
        name: plan.name,
        layer: plan.layer,
        target: plan.target,
        shape: [plan.dOut, plan.dIn],
        cosine,
        cosineExact,
        projected: cosine !== null && threshold !== null && isSelected(cosine, threshold),
        skipped,
        normRatio: skipped ? null : Math.sqrt(figures.projectedUpdateNormSq / figures.updateNormSq),
        alignmentDistance: figures.wBaseNormSq === 0 ? null : Math.sqrt(figures.vNormSq / figures.wBaseNormSq),
        weightCosine: weightCosine(figures),
      };
    });
    const projectedCount = modules.filter((module) => module.projected).length;
    const metadata = {
      format: "pt",
      "safe_lora.version": TOOL.version,
      "safe_lora.selection": formatSelection(selection),
      "safe_lora.threshold": String(threshold),
      "safe_lora.projected": `${projectedCount}/${modules.length}`,
    };
    const replacements = new Map<string, { offset: number; length: number }>();
    outcomes.forEach(({ plan, staged }, index) => {
      if (!modules[index]!.projected) return;
      // A projected module is always staged: threshold mode staged exactly the modules within τ.
      if (!staged) throw new Error(`module "${plan.name}" is projected but its variant was not staged`);
      replacements.set(plan.tensor, staged);
    });
    await this.close();
    // Every tensor of the fine-tune, in its order; only projected modules come from the staged variant.
    const tensors = await Promise.all([...finetuned.names()].map((name) => finetuned.info(name)));
    const stagedVariant = await FileByteSource.open(staging.file(STAGED_VARIANT));
    let shards: WrittenShards;
    try {
      shards = await writeShardedSafetensors({
        pathOf: (name) => staging.file(name),
        metadata,
        tensors,
        dataOf: (tensor) => {
          const at = replacements.get(tensor.name);
          return at ? stagedVariant.read(at.offset, at.length) : finetuned.readBytes(tensor.name);
        },
        ...(limits?.maxShardBytes !== undefined ? { maxShardBytes: limits.maxShardBytes } : {}),
      });
    } finally {
      await stagedVariant.close();
    }
    await staging.delete(STAGED_VARIANT);
    return {
      modules,
      threshold,
      metadata,
      weightsPath: staging.file(shards.index),
      shards,
      untouchedTensors: tensors.map((tensor) => tensor.name).filter((name) => !replacements.has(name)),
      provider: this.opened,
      alignmentCache: null,
      alignmentSources: { warm: 0, cache: 0, weights: outcomes.length, keptWarm: 0 },
    };
  }

  async close(): Promise<void> {
    const handle = this.stagedVariant;
    this.stagedVariant = null;
    // After the module being computed, if any: its staged file is in use until it ends.
    await this.computing;
    await handle?.close();
  }
}
