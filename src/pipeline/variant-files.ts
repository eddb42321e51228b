import { join } from "node:path";
import { renderModelCard, type ModelCardContext } from "../report/model-card.js";
import { renderSimilarityChart } from "../report/similarity-chart.js";
import { writeChunks } from "../safetensors/write.js";
import { writeDirAtomically, type WriteDirOptions } from "../storage/atomic-dir.js";
import { renderFullFinetuneCard } from "../report/full-finetune-card.js";
import type { PatchedAdapter } from "./patch-adapter.js";
import type { PatchedFullFinetune } from "./patch-full-finetune.js";

export const REPORT_FILE = "safe-lora-report.json";
export const CHART_FILE = "similarity.svg";
/** Every file a variant folder holds: a folder with anything else is not (only) this tool's output. */
export const VARIANT_FILE_NAMES = ["adapter_model.safetensors", "adapter_config.json", "README.md", CHART_FILE, REPORT_FILE] as const;
/** What a full fine-tune's variant folder holds besides its card and report: config.json, the shards and their index. */
const FINETUNE_VARIANT_FILE = /^(config\.json|model\.safetensors\.index\.json|model-\d{5}-of-\d{5}\.safetensors)$/;

/** Whether a file of this name is one this tool writes into a variant folder (of an adapter or of a full fine-tune). */
export function isVariantFileName(name: string): boolean {
  return (VARIANT_FILE_NAMES as readonly string[]).includes(name) || FINETUNE_VARIANT_FILE.test(name);
}

/** One file of a Safe LoRA variant folder, as chunks to write in order: bytes, or blobs (files staged on disk). */
export interface VariantFile {
  readonly path: string;
  readonly chunks: readonly (Uint8Array | Blob)[];
}

const text = (content: string) => [new TextEncoder().encode(content)];

/**
 * The files of a variant folder (README, "Usage": what `--out` receives): the patched weights with the input's keys, dtypes and
 * metadata, the unchanged config, the report card, the chart and the report JSON. The same list is
 * written to disk by the CLI and committed to a pull request by the bot.
 */
export function variantFiles(patched: PatchedAdapter, card: ModelCardContext): VariantFile[] {
  return [
    { path: "adapter_model.safetensors", chunks: [patched.weights] },
    { path: "adapter_config.json", chunks: text(patched.configText) },
    { path: "README.md", chunks: text(renderModelCard(patched.report, card)) },
    { path: CHART_FILE, chunks: text(renderSimilarityChart(patched.report)) },
    { path: REPORT_FILE, chunks: text(`${JSON.stringify(patched.report, null, 2)}\n`) },
  ];
}

/**
 * The files of a full fine-tune's variant folder: the shards and their index, the fine-tune's config.json, the card
 * and the report. The shards are the staged files themselves, read as they are written or committed.
 */
export function finetuneVariantFiles(patched: PatchedFullFinetune, card: ModelCardContext): VariantFile[] {
  return [...patched.files, { path: "README.md", chunks: text(renderFullFinetuneCard(patched.report, card)) }, { path: REPORT_FILE, chunks: text(`${JSON.stringify(patched.report, null, 2)}\n`) }];
}

/** Writes a variant folder atomically: `dir` ends up complete or untouched. */
export async function writeVariant(dir: string, files: readonly VariantFile[], options: WriteDirOptions = {}): Promise<void> {
  await writeDirAtomically(
    dir,
    async (staging) => {
      for (const file of files) await writeChunks(join(staging, file.path), file.chunks);
    },
    { completionMarker: REPORT_FILE, ...options },
  );
}
