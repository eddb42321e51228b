import { inSubfolder } from "../storage/repo-files.js";

/** The folder a variant goes in, next to its adapter; never itself an adapter to patch (that would loop). */
export const VARIANT_FOLDER = "safe-lora";

/** The variant folder of the adapter in `folder` (REPO_ROOT for the repo root). */
export function variantFolderOf(folder: string): string {
  return inSubfolder(folder, VARIANT_FOLDER);
}
