import type { BotContext } from "./context.js";

/**
 * Whether the bot acts on `repo` at all: its owner installed the bot's webhook (a delivery with the secret
 * reached it), or the operator lists the owner or the repo in BOT_CONFIG `watch`. Installing is the consent;
 * nobody else can sign an owner up, e.g. through the status page's form.
 */
export function coversRepo(context: Pick<BotContext, "state" | "config">, repo: string): boolean {
  const owner = repo.split("/")[0]!.toLowerCase();
  const watched = context.config.watch.map((entry) => entry.toLowerCase());
  return watched.includes(owner) || watched.includes(repo.toLowerCase()) || context.state.hasCoveredOwner(owner);
}
