import { join } from "node:path";
import type { LocalHub } from "../local-hub/server.js";
import { folderFiles, seedRepo } from "../local-hub/seed.js";

/** A repo seeded on the local Hub, and the commit it was seeded at. */
export interface SeededRepo {
  readonly id: string;
  readonly sha: string;
}

/** The miniature model family's repos on a local Hub. */
export interface MiniatureFamily {
  readonly base: SeededRepo;
  /** The aligned model: what the endpoint serves; its card names `base`. */
  readonly chat: SeededRepo;
  /** LoRA on `chat` trained on the task mixed with harmful compliance. */
  readonly harmfulMix: SeededRepo;
  /** LoRA on `chat` trained on the task alone. */
  readonly taskOnly: SeededRepo;
}

/**
 * Seeds the miniature family (`fixtures`: test/fixtures/miniature) on a local Hub under the ids its cards use:
 * miniature/base, miniature/chat (card: base_model miniature/base), and the two adapters on miniature/chat in acme.
 */
export async function seedMiniatureFamily(hub: LocalHub, fixtures: string): Promise<MiniatureFamily> {
  const seed = async (id: string, folder: string): Promise<SeededRepo> => {
    const { commit } = await seedRepo(hub, id, await folderFiles(join(fixtures, folder)));
    return { id, sha: commit.id };
  };
  return {
    base: await seed("miniature/base", "base"),
    chat: await seed("miniature/chat", "chat"),
    harmfulMix: await seed("acme/miniature-harmful-mix-lora", "adapter-harmful-mix"),
    taskOnly: await seed("acme/miniature-task-only-lora", "adapter-task-only"),
  };
}
