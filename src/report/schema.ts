import { z } from "zod";
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
});
export type ModuleReport = z.infer<typeof ModuleReport>;

export const FileDigest = z.object({ path: z.string(), size: z.number().int(), sha256: z.string() });
export type FileDigest = z.infer<typeof FileDigest>;

export const InputReport = z.object({
  /** A local path, or a Hub id. */
  location: z.string(),
  /** Pinned revision (commit sha) for Hub repos; null for local folders. */
  revision: z.string().nullable(),
  /** Which rule chose it: explicit, registry, model-tree, adapter-config, adapter-card, … */
  resolvedBy: z.string(),
  files: z.array(FileDigest),
});

/** `safe-lora-report.json`: the record of one patch. Fields required by DESIGN.md §4 must stay. */
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
    formula: z.string(),
    executionProvider: z.string(),
  }),
  modules: z.array(ModuleReport),
  projectedCount: z.number().int(),
  moduleCount: z.number().int(),
  /** Tensors of the adapter copied unchanged (LoRA biases, modules_to_save, …). */
  untouchedTensors: z.array(z.string()),
  bytesRead: z.object({ base: z.number().int(), aligned: z.number().int(), adapter: z.number().int() }),
  inputs: z.object({ adapter: InputReport, base: InputReport, aligned: InputReport }),
  durationMs: z.number(),
  /** The bot's record of inputs and settings (absent for CLI runs). */
  record: PatchRecord.optional(),
});
export type SafeLoraReport = z.infer<typeof SafeLoraReport>;
