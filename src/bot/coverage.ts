import type { ForgeName } from "../forge/forge.js";
import type { BotContext } from "./context.js";

/**
 * Whether the bot acts on `repo` at all: its owner installed the bot's webhook (a delivery with the secret
 * reached it), or the operator lists the owner or the repo in BOT_CONFIG `watch`. Installing is the consent;
 * nobody else can sign an owner up, e.g. through the status page's form.
 */
export async function coversRepo(context: Pick<BotContext, "memory" | "config">, { forge, repo }: { readonly forge: ForgeName; readonly repo: string }): Promise<boolean> {
  const owner = repo.split("/")[0]!.toLowerCase();
  const watched = context.config.watch.map((entry) => entry.toLowerCase());
  return watched.includes(owner) || watched.includes(repo.toLowerCase()) || (await context.memory.hasCoveredOwner({ forge, owner }));
}
