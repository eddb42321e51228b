import { posix } from "node:path";
import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import type { RepoConfig } from "../config/bot-config.js";
import type { PinnedRepo } from "../forge/forge.js";
import { cardBaseModels, parseCardData } from "../hub/card-data.js";
import { MODEL_CONFIG } from "../llama/llama-config.js";
import { ADAPTER_CONFIG } from "../peft/open-adapter.js";
import { isCheckpointWeightsFile } from "../safetensors/checkpoint.js";
import { inSubfolder } from "../storage/repo-files.js";
import { coveredFolders } from "./adapters.js";

/** config.json as far as routing needs it: the sizes that make the largest linear module. Anything else is ignored. */
const RoutingConfig = z.looseObject({
  hidden_size: z.number().int().positive().optional(),
  intermediate_size: z.number().int().positive().optional(),
});

export interface FinetuneFolder {
  /** Folder in the repo, "." for the root. */
  readonly folder: string;
  /** Content keys of its config.json and weights: changes exactly when the fine-tune does. */
  readonly filesKey: string;
  /** Path -> content key of each of those files. */
  readonly files: Record<string, string>;
  /**
   * d_out·d_in of its largest decoder linear as config.json declares it (hidden × max(hidden, intermediate) for
   * Llama-style models); null when it does not say. The job's CPU guard checks the real shapes either way.
   */
  readonly largestModuleElements: number | null;
}

/** The content keys of a fine-tune folder's config.json and weight files. */
export async function finetuneFileKeys(files: PinnedRepo, folder: string): Promise<{ files: Record<string, string>; filesKey: string }> {
  const keys: Record<string, string> = {};
  const inFolder = files.paths().filter((path) => posix.dirname(path) === folder && (posix.basename(path) === MODEL_CONFIG || isCheckpointWeightsFile(posix.basename(path))));
  for (const path of inFolder.sort()) {
    const key = await files.contentKey(path);
    if (key) keys[path] = key;
  }
  return { files: keys, filesKey: Object.values(keys).join("+") };
}

/**
 * Full fine-tunes in a repo: covered folders with a config.json and safetensors weights, no adapter_config.json,
 * and a card whose `base_model` names the model they were trained from (without one there is nothing to pair them
 * with, and a base model's own repo is not mistaken for a fine-tune). Unreadable configs and cards are left out.
 */
export async function findFinetuneFolders(files: PinnedRepo, config: RepoConfig): Promise<FinetuneFolder[]> {
  const found: FinetuneFolder[] = [];
  const paths = new Set(files.paths());
  for (const folder of coveredFolders(files, config, MODEL_CONFIG)) {
    if (paths.has(inSubfolder(folder, ADAPTER_CONFIG))) continue;
    if (![...paths].some((path) => posix.dirname(path) === folder && isCheckpointWeightsFile(posix.basename(path)))) continue;
    const card = inSubfolder(folder, "README.md");
    if (!paths.has(card)) continue;
    let routing: z.infer<typeof RoutingConfig>;
    try {
      if (cardBaseModels(parseCardData(await files.readText(card))).length === 0) continue;
      const parsed = RoutingConfig.safeParse(JSON.parse(await files.readText(inSubfolder(folder, MODEL_CONFIG))));
      if (!parsed.success) continue;
      routing = parsed.data;
    } catch (error) {
      // Not JSON, or too large to be a config: not a model folder the bot can patch. A forge that failed is retried.
      if (error instanceof SyntaxError || (error instanceof SafeLoraError && error.code === "limit-exceeded")) continue;
      throw error;
    }
    const { hidden_size: hidden, intermediate_size: intermediate } = routing;
    const largestModuleElements = hidden === undefined ? null : hidden * Math.max(hidden, intermediate ?? hidden);
    found.push({ folder, ...(await finetuneFileKeys(files, folder)), largestModuleElements });
  }
  return found;
}
