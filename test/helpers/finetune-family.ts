import { join } from "node:path";
import { folderFiles, seedRepo } from "../../src/local-hub/seed.js";
import type { BotWorld } from "./bot-world.js";
import { writeTinyFullFinetune, type TinyFullFinetune } from "./tiny-full-finetune.js";

/** A full fine-tune's card: it names the aligned model it was trained from, as the bot needs. */
export const FINETUNE_CARD = "---\nlicense: apache-2.0\nbase_model: test-org/tiny-chat\n---\n# A full fine-tune\n";

/**
 * The tiny family (tiny-full-finetune.ts) on the world's Hub: `test-org/tiny-base` and `test-org/tiny-chat`, whose
 * card names its base; the fine-tune's own files stay on disk for the test to push where it wants them.
 */
export async function seedFinetuneFamily(world: BotWorld): Promise<TinyFullFinetune> {
  const models = await writeTinyFullFinetune(join(world.work, "models"));
  await seedRepo(world.hub, "test-org/tiny-base", await folderFiles(models.base));
  await seedRepo(world.hub, "test-org/tiny-chat", [...(await folderFiles(models.aligned)), { path: "README.md", data: "---\nbase_model: test-org/tiny-base\n---\n# tiny chat\n" }]);
  return models;
}
