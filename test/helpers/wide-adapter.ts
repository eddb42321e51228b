import { readFileSync } from "node:fs";
import { join } from "node:path";
import { folderFiles, seedRepo } from "../../src/local-hub/seed.js";
import type { BotWorld } from "./bot-world.js";
import { writeSyntheticCase, type SyntheticModule } from "./tensors.js";

/**
 * 64 modules (q_proj and v_proj of 32 layers). The first layer's two are 4096 × 4096, as in an 8B model: their
 * projection passes over 16 M weights several times, long enough to hold an event loop for hundreds of ms if it
 * ran there. The rest are 512 × 512.
 */
export const WIDE_MODULES: SyntheticModule[] = Array.from({ length: 32 }, (_, layer) =>
  (["q_proj", "v_proj"] as const).map((target) => {
    const d = layer < 1 ? 4096 : 512;
    return { layer, target, dOut: d, dIn: d, rank: 8 };
  }),
).flat();

/** Seeds `acme/wide-base` and `acme/wide-chat` on the world's Hub; returns the adapter's files, to push with `pushWide`. */
export async function seedWidePair(world: BotWorld): Promise<Record<string, Buffer>> {
  const dirs = await writeSyntheticCase(join(world.work, "synthetic"), WIDE_MODULES);
  await seedRepo(world.hub, "acme/wide-base", await folderFiles(dirs.base));
  await seedRepo(world.hub, "acme/wide-chat", await folderFiles(dirs.chat));
  return Object.fromEntries((await folderFiles(dirs.adapter)).map((file) => [file.path, readFileSync((file as { diskPath: string }).diskPath)]));
}

/** Commits the wide adapter to the world's adapter repo, with the pair named in its safe-lora.yaml. */
export function pushWide(world: BotWorld, adapterFiles: Record<string, Buffer>): Promise<string> {
  return world.commitFiles({ ...adapterFiles, "safe-lora.yaml": "pair:\n  base: acme/wide-base\n  aligned: acme/wide-chat\n" }, { title: "Upload a wide adapter" });
}
