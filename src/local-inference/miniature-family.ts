import { join } from "node:path";
import type { LocalHub } from "../local-hub/server.js";
import { folderFiles, seedRepo } from "../local-hub/seed.js";

/** The miniature model family's repos on a local Hub, each with the commit it was seeded at. */
export interface MiniatureFamily {
  readonly base: { readonly id: string; readonly sha: string };
  /** The aligned model: what the endpoint serves; its card names `base`. */
  readonly chat: { readonly id: string; readonly sha: string };
  /** LoRA on `chat` trained on the task mixed with harmful compliance. */
  readonly harmfulMix: { readonly id: string; readonly sha: string };
  /** LoRA on `chat` trained on the task alone. */
  readonly taskOnly: { readonly id: string; readonly sha: string };
}

/** Where each repo's files are in the fixture folder (test/fixtures/miniature), by repo id. */
const REPOS = {
  base: { id: "miniature/base", folder: "base" },
  chat: { id: "miniature/chat", folder: "chat" },
  harmfulMix: { id: "acme/miniature-harmful-mix-lora", folder: "adapter-harmful-mix" },
  taskOnly: { id: "acme/miniature-task-only-lora", folder: "adapter-task-only" },
} as const;

/**
 * Seeds the miniature family (`fixtures`: test/fixtures/miniature) on a local Hub under the ids its cards use:
 * miniature/base, miniature/chat (card: base_model miniature/base), and the two adapters on miniature/chat in acme.
 */
export async function seedMiniatureFamily(hub: LocalHub, fixtures: string): Promise<MiniatureFamily> {
  const seeded: Partial<Record<keyof MiniatureFamily, { id: string; sha: string }>> = {};
  for (const [key, repo] of Object.entries(REPOS) as Array<[keyof MiniatureFamily, (typeof REPOS)[keyof MiniatureFamily]]>) {
    const { commit } = await seedRepo(hub, repo.id, await folderFiles(join(fixtures, repo.folder)));
    seeded[key] = { id: repo.id, sha: commit.id };
  }
  return seeded as MiniatureFamily;
}
