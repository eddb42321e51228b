import { openAsBlob } from "node:fs";
import { openAdapter } from "../peft/open-adapter.js";
import type { AlignmentCache } from "../projection/alignment-cache.js";
import type { ExecutionProviderChoice } from "../projection/execution-provider.js";
import { ProjectionThread } from "../projection/projection-thread.js";
import { DEFAULT_OPERATOR, type Operator } from "../projection/operator.js";
import type { Selection } from "../projection/selection.js";
import type { PatchRecord } from "../report/record.js";
import type { SafeLoraReport } from "../report/schema.js";
import { Checkpoint } from "../safetensors/checkpoint.js";
import { BufferPool } from "../safetensors/scratch-buffer.js";
import { StagingDir } from "../storage/staging-dir.js";
import { DEFAULT_MIN_WEIGHT_COSINE, identicalPair, LoraMethod, type AlignmentSources } from "./lora-method.js";
import { runModules } from "./module-loop.js";
import { buildReport, type WeightsInput } from "./patch-report.js";

export { DEFAULT_MIN_WEIGHT_COSINE, weightCosine } from "./lora-method.js";
export { OPERATOR_FORMULA, type WeightsInput } from "./patch-report.js";

export interface PatchRequest {
  readonly adapter: WeightsInput;
  readonly base: WeightsInput;
  readonly aligned: WeightsInput;
  readonly selection: Selection;
  /** Which operator projects (default: the paper's C = V Vᵀ / ‖V‖_F). */
  readonly operator?: Operator;
  readonly executionProvider: ExecutionProviderChoice;
  /** Where V of pairs seen before is kept; null or absent: no cache. Used only for files with content keys. */
  readonly cache?: AlignmentCache | null;
  /**
   * Keep V of the pair's modules in this process's projection thread for the next runs, within `maxBytes` for all
   * pairs together (least recently used out), so that a second adapter on a warm pair reads only its own tensors.
   * For a process that patches many adapters (the bot's worker; SAFE_LORA_WARM_PAIRS_MB); null or absent: off, as
   * a one-off patch gains nothing from it. Used only for files with content keys, like the cache.
   */
  readonly warmPairs?: { readonly maxBytes: number } | null;
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
  /** Where the run's staging folder is made (default: the system's temporary folder). */
  readonly stagingParent?: string;
}

export interface PatchProgress {
  /** Modules done so far, and in all. */
  readonly done: number;
  readonly total: number;
  readonly module: string;
  /** Weight bytes read from base and aligned so far. */
  readonly bytesRead: number;
}

/**
 * A patched adapter, ready to be written to a folder or committed: the new weights (staged on disk), config and
 * report. `release()` removes the staged weights once they are written or committed.
 */
export interface PatchedAdapter {
  readonly report: SafeLoraReport;
  /** `__metadata__` of the patched weights: the input's, plus provenance under `safe_lora.*`. */
  readonly metadata: Record<string, string>;
  /**
   * `adapter_model.safetensors` of the variant, a file-backed Blob over the staging folder: every tensor of the
   * input adapter in its original order, where only projected `lora_B` tensors differ.
   */
  readonly weights: Blob;
  /** `adapter_config.json`, byte for byte as the input had it. */
  readonly configText: string;
  /** Modules by where their V came from: warm in this process, the disk cache, or the pair's weights. */
  readonly alignmentSources: AlignmentSources;
  /** Removes the staged weights (and their folder); `weights` cannot be read afterwards. Safe to call twice. */
  release(): Promise<void>;
}

/**
 * Safe LoRA on one adapter: for every LoRA module, V = W_aligned − W_base, the cosine between CΔW and ΔW,
 * and C·B; then the selection decides which `lora_B` tensors are replaced by C·B. Weights are read module by
 * module, by byte range, into reused buffers, a few modules ahead of the one the projection thread computes:
 * memory does not grow with the number of modules, and the event loop is never blocked by compute. The
 * variant's weights are written to a staging folder as they are made, never held whole.
 */
export async function patchAdapter(request: PatchRequest): Promise<PatchedAdapter> {
  const started = performance.now();
  // The same repo at the same commit (or the same folder named twice) needs no weight read to be refused.
  const where = (input: WeightsInput) => `${input.location ?? input.files.description}@${input.revision ?? ""}/${input.subfolder ?? ""}`;
  if (where(request.base) === where(request.aligned)) throw identicalPair(request.base.files, request.aligned.files);
  // Started now, the thread loads its modules and onnxruntime while the headers are read (its session is made later).
  const thread = ProjectionThread.shared();
  const adapter = await openAdapter(request.adapter.files, request.adapter.subfolder);
  const base = await Checkpoint.open(request.base.files, request.base.subfolder, request.cache ?? null);
  const aligned = await Checkpoint.open(request.aligned.files, request.aligned.subfolder, request.cache ?? null);
  const staging = await StagingDir.create(request.stagingParent);
  const method = new LoraMethod({
    adapter,
    base,
    aligned,
    selection: request.selection,
    operator: request.operator ?? DEFAULT_OPERATOR,
    executionProvider: request.executionProvider,
    cache: request.cache ?? null,
    warmPairs: request.warmPairs ?? null,
    minWeightCosine: request.minWeightCosine ?? DEFAULT_MIN_WEIGHT_COSINE,
    limits: request.limits,
    onNotice: request.onNotice,
    thread,
    pool: new BufferPool(),
    staging,
  });
  try {
    const plans = await method.plan();
    const outcomes = await runModules(plans, method, {
      signal: request.signal,
      onModule: (plan, _outcome, done) =>
        request.onProgress?.({ done, total: plans.length, module: plan.module.name, bytesRead: base.bytesRead + aligned.bytesRead }),
    });
    const variant = await method.assemble(outcomes);
    const report = await buildReport({ request, adapter, base, aligned, variant, started });
    const weights = await openAsBlob(variant.weightsPath);
    return { report, metadata: variant.metadata, weights, configText: adapter.configText, alignmentSources: variant.alignmentSources, release: () => staging.remove() };
  } catch (error) {
    await staging.remove();
    throw error;
  } finally {
    await method.close();
  }
}
