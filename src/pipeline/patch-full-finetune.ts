import { openAsBlob } from "node:fs";
import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import { MODEL_CONFIG, parseModelJson } from "../llama/llama-config.js";
import type { ExecutionProviderChoice } from "../projection/execution-provider.js";
import { projectsMostModules, type Selection } from "../projection/selection.js";
import type { FinetuneRecord, FullFinetuneReport } from "../report/full-finetune-schema.js";
import type { InputReport } from "../report/schema.js";
import { Checkpoint } from "../safetensors/checkpoint.js";
import { BufferPool } from "../safetensors/scratch-buffer.js";
import { ProjectionThread } from "../projection/projection-thread.js";
import { inSubfolder } from "../storage/repo-files.js";
import { StagingDir } from "../storage/staging-dir.js";
import { TOOL } from "../version.js";
import { DEFAULT_MIN_WEIGHT_COSINE, identicalPair } from "./lora-method.js";
import { FullMethod, type FullFinetuneLimits } from "./full-method.js";
import { runModules } from "./module-loop.js";
import type { PatchProgress } from "./patch-adapter.js";
import { executionFields, type WeightsInput } from "./patch-report.js";
import type { VariantFile } from "./variant-files.js";

export { DEFAULT_MAX_CPU_MODULE_ELEMENTS, type FullFinetuneLimits } from "./full-method.js";
export type { FullFinetuneReport } from "../report/full-finetune-schema.js";

export const FULL_OPERATOR_FORMULA = "C = V Vᵀ / ‖V‖_F with V = W_aligned − W_base (fp32); W ← W_aligned + C·(W_finetuned − W_aligned)";

export interface FullFinetuneRequest {
  /** The fine-tune: config.json and safetensors, a full copy of the aligned model's weights, trained further. */
  readonly finetuned: WeightsInput;
  readonly base: WeightsInput;
  /** The aligned model the fine-tune was trained from (its card's `base_model`). */
  readonly aligned: WeightsInput;
  readonly selection: Selection;
  readonly executionProvider: ExecutionProviderChoice;
  /** Below this cosine between two of the models' weights in a module, they are taken for unrelated (default 0.2). */
  readonly minWeightCosine?: number;
  /** Job limits; `maxCpuModuleElements` caps the module size a CPU run takes on. */
  readonly limits?: FullFinetuneLimits;
  readonly onProgress?: (progress: PatchProgress) => void;
  /** The bot's record of inputs and settings, stored in the report. */
  readonly record?: FinetuneRecord;
  /** Stops the run between modules (job time limit, shutdown). */
  readonly signal?: AbortSignal;
  /** Where the run's staging folder is made (default: the system's temporary folder). */
  readonly stagingParent?: string;
}

type InputIdentity = z.infer<typeof InputReport>;

/** A patched full fine-tune, staged: its files in the order to write them, and its report. */
export interface PatchedFullFinetune {
  readonly report: FullFinetuneReport;
  /** The shards, their index and the fine-tune's config.json byte for byte; variant-files adds the card and the report. */
  readonly files: VariantFile[];
  /** Removes the staged shards (and their folder); `files` cannot be read afterwards. Safe to call twice. */
  release(): Promise<void>;
}

/** config.json of the fine-tune, copied byte for byte; it must at least be a JSON object. */
async function readConfig(input: WeightsInput): Promise<string> {
  const path = inSubfolder(input.subfolder ?? "", MODEL_CONFIG);
  const where = `${input.files.description}/${path}`;
  if (!(await input.files.exists(path))) {
    throw new SafeLoraError(`${input.files.description} has no ${path}: a full fine-tune is a transformers model folder (config.json and safetensors weights)`, "missing-file");
  }
  const text = await input.files.readText(path);
  if (!z.looseObject({}).safeParse(parseModelJson(text, where)).success) {
    throw new SafeLoraError(`${where} is not a JSON object; re-save the model with save_pretrained`, "invalid-model-config");
  }
  return text;
}

/**
 * Where an input is. Hub files are named by the sha256 the Hub keeps for them; a local folder's are left out here
 * (its header digests are patch-report.ts's, not yet shared).
 */
async function identity(input: WeightsInput, checkpoint: Checkpoint): Promise<InputIdentity> {
  const used = input.revision === null ? [] : await checkpoint.filesUsed();
  return {
    location: input.location ?? input.files.description,
    revision: input.revision,
    resolvedBy: input.resolvedBy ?? "explicit",
    files: used.flatMap(({ path, size, contentKey }) => (contentKey && /^[0-9a-f]{64}$/.test(contentKey) ? [{ path, size, sha256: contentKey }] : [])),
  };
}

/**
 * Safe LoRA on a full fine-tune of an aligned model: per decoder linear, ΔW = W_finetuned − W_aligned, the cosine
 * between CΔW and ΔW, and W_aligned + C ΔW for the modules the selection projects; every other tensor is the
 * fine-tune's. Weights are read a module at a time into reused buffers, the variant staged on disk and written as
 * a sharded checkpoint with its index, a tensor at a time: memory holds a few modules, never the model.
 */
export async function patchFullFinetune(request: FullFinetuneRequest): Promise<PatchedFullFinetune> {
  const started = performance.now();
  const where = (input: WeightsInput) => `${input.location ?? input.files.description}@${input.revision ?? ""}/${input.subfolder ?? ""}`;
  if (where(request.base) === where(request.aligned)) throw identicalPair(request.base.files, request.aligned.files);
  // Started now, the thread loads onnxruntime while the headers are read.
  const thread = ProjectionThread.shared();
  const configText = await readConfig(request.finetuned);
  const finetuned = await Checkpoint.open(request.finetuned.files, request.finetuned.subfolder);
  const base = await Checkpoint.open(request.base.files, request.base.subfolder);
  const aligned = await Checkpoint.open(request.aligned.files, request.aligned.subfolder);
  const staging = await StagingDir.create(request.stagingParent);
  const method = new FullMethod({
    finetuned,
    base,
    aligned,
    selection: request.selection,
    executionProvider: request.executionProvider,
    minWeightCosine: request.minWeightCosine ?? DEFAULT_MIN_WEIGHT_COSINE,
    limits: request.limits,
    pool: new BufferPool(),
    staging,
    thread,
  });
  const bytesRead = () => base.bytesRead + aligned.bytesRead + finetuned.bytesRead;
  try {
    const plans = await method.plan();
    const outcomes = await runModules(plans, method, {
      signal: request.signal,
      onModule: (plan, _outcome, done) => request.onProgress?.({ done, total: plans.length, module: plan.name, bytesRead: bytesRead() }),
    });
    const variant = await method.assemble(outcomes);
    const { modules, shards } = variant;
    const projectedCount = modules.filter((module) => module.projected).length;
    const report: FullFinetuneReport = {
      schemaVersion: 1,
      method: "safe-lora",
      kind: "full-finetune",
      tool: TOOL,
      createdAt: new Date().toISOString(),
      selection: { mode: request.selection.mode, value: request.selection.value, threshold: variant.threshold },
      operator: {
        formula: FULL_OPERATOR_FORMULA,
        ...executionFields(variant.provider, request.executionProvider),
      },
      modules: [...modules],
      projectedCount,
      moduleCount: modules.length,
      untouchedTensors: [...variant.untouchedTensors],
      bytesRead: { base: base.bytesRead, aligned: aligned.bytesRead, finetuned: finetuned.bytesRead },
      inputs: { finetuned: await identity(request.finetuned, finetuned), base: await identity(request.base, base), aligned: await identity(request.aligned, aligned) },
      variant: { shards: [...shards.shards], index: shards.index, totalSize: shards.totalSize },
      durationMs: Math.round(performance.now() - started),
      ...(request.record ? { record: request.record } : {}),
      ...(projectsMostModules(projectedCount, modules.length) ? { warnings: ["projects-most-modules" as const] } : {}),
    };
    const text = (content: string) => [new TextEncoder().encode(content)];
    const files: VariantFile[] = [];
    for (const name of [...shards.shards, shards.index]) files.push({ path: name, chunks: [await openAsBlob(staging.file(name))] });
    files.push({ path: MODEL_CONFIG, chunks: text(configText) });
    return { report, files, release: () => staging.remove() };
  } catch (error) {
    await staging.remove();
    throw error;
  } finally {
    await method.close();
  }
}
