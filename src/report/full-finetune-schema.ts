import { z } from "zod";
import { PatchRecord } from "./record.js";
import { InputReport, ModuleReport, SafeLoraReport } from "./schema.js";

/** A full fine-tune's module: the LoRA report's, without a rank; `normRatio` is ‖CΔW‖_F / ‖ΔW‖_F. */
export const FullModuleReport = ModuleReport.omit({ rank: true, subspaceRank: true, capturedEnergy: true, subspaceCapped: true });
export type FullModuleReport = z.infer<typeof FullModuleReport>;

/** The bot's record of a full fine-tune's patch: PatchRecord with the fine-tune's files where it names the adapter's. */
export const FinetuneRecord = PatchRecord.omit({ adapter: true }).extend({
  /** Fine-tune file path (config.json, weights, shard index) -> content key. */
  finetuned: z.record(z.string(), z.string()),
});
export type FinetuneRecord = z.infer<typeof FinetuneRecord>;

/**
 * `safe-lora-report.json` of a full fine-tune: SafeLoraReport's fields where they mean the same, and these
 * differences — `kind` says which method ran; `inputs` and `bytesRead` name the fine-tune where the LoRA report
 * names the adapter; modules have no rank and their `normRatio` is ‖CΔW‖_F/‖ΔW‖_F; `untouchedTensors` lists the
 * fine-tune's tensors copied unchanged (embeddings, norms, lm_head, and the modules not projected); `variant` names
 * the shards. There is no alignment cache, dry-run preview or behavioural check for full fine-tunes yet.
 */
export const FullFinetuneReport = SafeLoraReport.omit({
  modules: true,
  untouchedTensors: true,
  bytesRead: true,
  inputs: true,
  alignmentCache: true,
  dryRun: true,
  record: true,
  behaviour: true,
}).extend({
  kind: z.literal("full-finetune"),
  modules: z.array(FullModuleReport),
  untouchedTensors: z.array(z.string()),
  bytesRead: z.object({ base: z.number().int(), aligned: z.number().int(), finetuned: z.number().int() }),
  inputs: z.object({ finetuned: InputReport, base: InputReport, aligned: InputReport }),
  variant: z.object({ shards: z.array(z.string()), index: z.string(), totalSize: z.number().int() }),
  /** The bot's record of inputs and settings (absent for CLI runs). */
  record: FinetuneRecord.optional(),
});
export type FullFinetuneReport = z.infer<typeof FullFinetuneReport>;

/** Whether a report is a full fine-tune's (a LoRA report has no `kind`). */
export function isFullFinetuneReport(report: object): report is FullFinetuneReport {
  return "kind" in report && report.kind === "full-finetune";
}
