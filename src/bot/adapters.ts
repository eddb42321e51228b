import picomatch from "picomatch";
import { posix } from "node:path";
import type { RepoConfig } from "../config/bot-config.js";
import type { PinnedRepo } from "../forge/forge.js";
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from "../peft/open-adapter.js";
import { VARIANT_FOLDER } from "../report/variant-folder.js";
import { inSubfolder, REPO_ROOT, repoPathProblem } from "../storage/repo-files.js";

export interface AdapterFolder {
  /** Folder in the repo, REPO_ROOT for the root. */
  readonly folder: string;
  /** Content keys of the adapter's files: changes exactly when the adapter does. */
  readonly filesKey: string;
  /** Path -> content key of each adapter file. */
  readonly files: Record<string, string>;
}

/**
 * The folders holding a file named `marker` that the repo's configuration covers: never the bot's variant folders,
 * trainer checkpoints only when configured, and only what `include` takes and `exclude` leaves; sorted.
 */
export function coveredFolders(files: PinnedRepo, config: RepoConfig, marker: string): string[] {
  const included = picomatch(config.include, { dot: true });
  const excluded = config.exclude.length > 0 ? picomatch(config.exclude, { dot: true }) : () => false;
  const folders: string[] = [];
  for (const path of files.paths().filter((p) => posix.basename(p) === marker).sort()) {
    // Whatever the forge lists, a folder that would leave the repo is never covered.
    if (repoPathProblem(path)) continue;
    const folder = posix.dirname(path);
    const segments = folder.split("/");
    if (segments.includes(VARIANT_FOLDER)) continue;
    if (!config.checkpoints && segments.some((segment) => /^checkpoint-\d+$/.test(segment))) continue;
    // picomatch's "**" does not match "." itself; the root is covered by it all the same.
    if (!(included(folder) || (folder === REPO_ROOT && config.include.includes("**"))) || excluded(folder)) continue;
    folders.push(folder);
  }
  return folders;
}

/**
 * LoRA adapters in a repo: folders with an adapter_config.json whose peft_type is LORA, except the bot's
 * variant folders, trainer checkpoints (unless configured) and folders the config excludes.
 */
export async function findAdapterFolders(files: PinnedRepo, config: RepoConfig): Promise<AdapterFolder[]> {
  const found: AdapterFolder[] = [];
  for (const folder of coveredFolders(files, config, ADAPTER_CONFIG)) {
    const path = inSubfolder(folder, ADAPTER_CONFIG);
    let peftType: unknown;
    try {
      peftType = (JSON.parse(await files.readText(path)) as { peft_type?: unknown }).peft_type;
    } catch {
      peftType = "LORA"; // unreadable: let the patch job report what is wrong with it
    }
    if (peftType !== "LORA") continue;
    found.push({ folder, ...(await adapterFileKeys(files, folder)) });
  }
  return found;
}

/** The content keys of an adapter folder's files. */
export async function adapterFileKeys(files: PinnedRepo, folder: string): Promise<{ files: Record<string, string>; filesKey: string }> {
  const keys: Record<string, string> = {};
  for (const name of [ADAPTER_CONFIG, ADAPTER_WEIGHTS, "adapter_model.bin"]) {
    const filePath = inSubfolder(folder, name);
    const key = await files.contentKey(filePath);
    if (key) keys[filePath] = key;
  }
  return { files: keys, filesKey: Object.values(keys).join("+") };
}
