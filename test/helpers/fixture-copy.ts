import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeSafetensors, type TensorToWrite } from "../../src/safetensors/write.js";
import type { HeaderMetadata } from "../../src/safetensors/schema.js";
import { goldenPath } from "./golden.js";
import { readForRewrite } from "./tensors.js";

export interface CaseCopy {
  root: string;
  adapter: string;
  base: string;
  chat: string;
  remove(): void;
}

/** A writable copy of a golden case's adapter, base and chat folders, for tests that damage inputs. */
export function copyGolden(caseName: string): CaseCopy {
  const root = mkdtempSync(join(tmpdir(), `safe-lora-${caseName}-`));
  for (const part of ["adapter", "base", "chat"]) cpSync(goldenPath(caseName, part), join(root, part), { recursive: true });
  return {
    root,
    adapter: join(root, "adapter"),
    base: join(root, "base"),
    chat: join(root, "chat"),
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

export function editJson(path: string, edit: (json: Record<string, unknown>) => void): void {
  const json = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  edit(json);
  writeFileSync(path, JSON.stringify(json, null, 2));
}

/** Rewrites a safetensors file through our own reader and writer, after `edit` changes its tensors. */
export async function rewriteSafetensors(
  path: string,
  edit: (tensors: TensorToWrite[], metadata: HeaderMetadata) => TensorToWrite[],
): Promise<void> {
  const { metadata, tensors } = await readForRewrite(path);
  const edited = edit(tensors, metadata);
  rmSync(path);
  await writeSafetensors(path, metadata, edited);
}
