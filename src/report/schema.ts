import { z } from "zod";
import { BehaviourEvidence } from "./behaviour-schema.js";
import { PatchRecord } from "./record.js";

/** Why a module has no cosine and was left unchanged. */
export const SkipReason = z.enum(["zero-update", "zero-alignment"]);
export type SkipReason = z.infer<typeof SkipReason>;

export const ModuleReport = z.object({
  /** PEFT module path: the tensor key without `.lora_A.weight` / `.lora_B.weight`. */
  name: z.string(),
  layer: z.number().int().nullable(),
  /** Last name component, e.g. `q_proj`. */
  target: z.string(),
  /** [d_out, d_in] of the adapted weight. */
  shape: z.tuple([z.number().int(), z.number().int()]),
  rank: z.number().int(),
  /** cos(CΔW, ΔW) rounded to 5 decimals as the reference rounds it; null when undefined (see `skipped`). */
  cosine: z.number().nullable(),
  /** The same cosine before rounding. */
  cosineExact: z.number().nullable(),
  projected: z.boolean(),
  skipped: SkipReason.nullable(),
  /** ‖CB‖_F / ‖B‖_F: how much the operator shrinks this module's update when it is applied. */
  normRatio: z.number().nullable(),
  /** ‖W_aligned − W_base‖_F / ‖W_base‖_F: how far the pair is apart in this module. */
  alignmentDistance: z.number().nullable(),
  /** cos(W_base, W_aligned): near 1 for a model and its fine-tune, near 0 for unrelated weights. */
  weightCosine: z.number().nullable(),
  /** Subspace operator only (absent for a skipped module): the k of P = U_k U_kᵀ used here. */
  subspaceRank: z.number().int().optional(),
  /** Subspace operator only: Σ_{i≤k} σᵢ² / ‖V‖_F², the share of V's energy P keeps. */
  capturedEnergy: z.number().optional(),
  /**
   * Subspace operator only: k was capped — by the sketch's width for `subspace:<e>` (no k within it reached e), or
   * by V's rank for `subspace:<k>`.
   */
  subspaceCapped: z.boolean().optional(),
});
export type ModuleReport = z.infer<typeof ModuleReport>;

/** A file hashed whole: Hub files by their LFS sha256, a local folder's small files (config, shard index) by reading them. */
export const FileDigest = z.object({ path: z.string(), size: z.number().int(), sha256: z.string() });
export type FileDigest = z.infer<typeof FileDigest>;

/**
 * A local safetensors weight file, identified without reading its gigabytes: `headerSha256` is the sha256 of its
 * first 8 + N bytes (the length prefix and the JSON header: every tensor's name, dtype, shape and byte offsets, and
 * `__metadata__`). With `size` it tells a re-saved or different checkpoint apart, but not a change of tensor values
 * that keeps the layout; `sha256sum` of the whole file is the full check (README, "What the report records").
 */
export const HeaderDigest = z.object({ path: z.string(), size: z.number().int(), headerSha256: z.string() });
export type HeaderDigest = z.infer<typeof HeaderDigest>;

export const InputReport = z.object({
  /** A local path, or a Hub id. */
  location: z.string(),
  /** Pinned revision (commit sha) for Hub repos; null for local folders. */
  revision: z.string().nullable(),
  /** Which rule chose it: explicit, registry, model-tree, adapter-config, adapter-card, … */
  resolvedBy: z.string(),
  files: z.array(FileDigest),
  /** Local folders only: the safetensors weight files used, by size and header hash (not hashed whole). */
  weightHeaders: z.array(HeaderDigest).optional(),
});

/** Why a reader should look twice at a report; renderers phrase each one for their audience. */
export const ReportWarning = z.enum([
  /** More than half of the modules were projected (projection/selection.ts, projectsMostModules). */
  "projects-most-modules",
]);
export type ReportWarning = z.infer<typeof ReportWarning>;

/**
 * Where the alignment data of the modules came from, when an alignment cache took part: `hits` modules had V
 * (and the weights' norms) from the cache, so no base or aligned weight byte was read for them; `misses` modules
 * were read from the models and stored. Absent when no cache took part (--no-cache, local folders, a pair too
 * large for the job's cache limit). `bytesRead.base`/`aligned` of 0 with hits = moduleCount means "from the cache".
 */
export const AlignmentCacheUse = z.object({ hits: z.number().int().nonnegative(), misses: z.number().int().nonnegative() });
export type AlignmentCacheUse = z.infer<typeof AlignmentCacheUse>;

/** What other selections would have projected on the same cosines (`patch --dry-run`). */
export const SelectionPreview = z.object({
  selection: z.string(),
  /** The effective τ of that selection; null when no module has a cosine. */
  threshold: z.number().nullable(),
  projectedCount: z.number().int(),
});
export type SelectionPreview = z.infer<typeof SelectionPreview>;

/** `safe-lora-report.json`: the record of one patch. The fields README.md documents ("What the report records") must stay. */
export const SafeLoraReport = z.object({
  schemaVersion: z.literal(1),
  method: z.literal("safe-lora"),
  tool: z.object({ name: z.string(), version: z.string() }),
  createdAt: z.string(),
  selection: z.object({
    mode: z.enum(["threshold", "top-k", "fraction"]),
    value: z.number(),
    /** The effective τ: as asked for `threshold`, derived for `top-k` and `fraction`; null when no module has a cosine. */
    threshold: z.number().nullable(),
  }),
  operator: z.object({
    /** `paper` (C = V Vᵀ / ‖V‖_F) or `subspace` (P = U_k U_kᵀ). Absent from reports made before there was a choice: paper. */
    kind: z.enum(["paper", "subspace"]).optional(),
    /** As `--operator` takes it: `paper`, `subspace:8`, `subspace:0.9`. Absent with `kind`. */
    setting: z.string().optional(),
    formula: z.string(),
    /**
     * Subspace operator only: modules by where their U_k came from — held warm by the worker, the disk alignment
     * cache, or computed by the randomised SVD in this run. Absent from reports made before it was recorded.
     */
    subspaceSources: z.object({ warm: z.number().int().nonnegative(), cache: z.number().int().nonnegative(), computed: z.number().int().nonnegative() }).optional(),
    /** The onnxruntime execution provider the projection ran on: what `requestedProvider` resolved to. */
    executionProvider: z.string(),
    /** What was asked (`--ep`, SAFE_LORA_EP): auto, cpu, cuda, webgpu. Absent from reports made before auto chose. */
    requestedProvider: z.string().optional(),
    /** With auto: the better providers passed over, and why each did not load. Absent when none was. */
    providerFallbacks: z.array(z.object({ provider: z.string(), reason: z.string() })).optional(),
  }),
  modules: z.array(ModuleReport),
  projectedCount: z.number().int(),
  moduleCount: z.number().int(),
  /** Tensors of the adapter copied unchanged (LoRA biases, modules_to_save, …). */
  untouchedTensors: z.array(z.string()),
  bytesRead: z.object({ base: z.number().int(), aligned: z.number().int(), adapter: z.number().int() }),
  inputs: z.object({ adapter: InputReport, base: InputReport, aligned: InputReport }),
  durationMs: z.number(),
  /** Present and non-empty only when there is something to warn about. */
  warnings: z.array(ReportWarning).optional(),
  alignmentCache: AlignmentCacheUse.optional(),
  /** `patch --dry-run`: nothing was written; what the selection and a few others would project. */
  dryRun: z.object({ alternatives: z.array(SelectionPreview) }).optional(),
  /** The bot's record of inputs and settings (absent for CLI runs). */
  record: PatchRecord.optional(),
  /** The behavioural check's figures, or why it could not run; absent where no inference endpoint was configured. Not part of `record`. */
  behaviour: BehaviourEvidence.optional(),
});
export type SafeLoraReport = z.infer<typeof SafeLoraReport>;
