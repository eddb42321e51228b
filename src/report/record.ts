import { z } from "zod";
import type { FinetuneRecord } from "./full-finetune-schema.js";

/**
 * What a patch was made from and how: the record the bot commits in safe-lora-report.json and reads back to
 * decide that a request would change nothing. Files are named by content keys (LFS sha256 or git blob id),
 * so a commit that touches only a README changes nothing here.
 */
export const PatchRecord = z.object({
  /** Adapter file path -> content key. */
  adapter: z.record(z.string(), z.string()),
  base: z.object({ id: z.string(), revision: z.string(), weights: z.array(z.string()) }),
  aligned: z.object({ id: z.string(), revision: z.string(), weights: z.array(z.string()) }),
  selection: z.string(),
  operator: z.string(),
  botVersion: z.string(),
});
export type PatchRecord = z.infer<typeof PatchRecord>;

/** Equal records mean an identical result. Revisions are kept for the reader, but do not count: contents do. */
export function sameRecord<R extends PatchRecord | FinetuneRecord>(a: R | null | undefined, b: R | null | undefined): boolean {
  if (!a || !b) return false;
  const essence = (record: PatchRecord | FinetuneRecord) =>
    JSON.stringify([
      "adapter" in record ? ["adapter", Object.entries(record.adapter).sort()] : ["finetuned", Object.entries(record.finetuned).sort()],
      record.base.id,
      [...record.base.weights].sort(),
      record.aligned.id,
      [...record.aligned.weights].sort(),
      record.selection,
      record.operator,
      record.botVersion,
    ]);
  return essence(a) === essence(b);
}
