import type { ForgeName } from "../forge/forge.js";

/** One adapter folder of one repo on one forge. */
export interface AdapterRef {
  readonly forge: ForgeName;
  readonly repo: string;
  /** "." for the repo root. */
  readonly folder: string;
}

/**
 * What the bot remembers that it cannot read back from the forge: adapters people told it to stop covering,
 * and owners whose webhook reached it (their consent). Notices and acknowledgements are not here: the bot
 * finds them on the forge by the hidden markers it writes into them. Everything is keyed by forge and repo,
 * so `acme/x` on the Hub and on GitHub never share a memory.
 */
export interface BotMemory {
  /** An owner whose webhook (with the secret) reached the bot: installing it was their consent. */
  noteCoveredOwner(owner: { readonly forge: ForgeName; readonly owner: string }): Promise<void>;
  hasCoveredOwner(owner: { readonly forge: ForgeName; readonly owner: string }): Promise<boolean>;
  /**
   * An App removed from repos (`owner/name`) or from a whole account (`owner`): their jobs are refused until it is
   * installed there again. Installing was the consent; removing it withdraws it.
   */
  uninstall(params: { readonly forge: ForgeName; readonly names: readonly string[] }): Promise<void>;
  /** Installed again on these repos or accounts. */
  reinstall(params: { readonly forge: ForgeName; readonly names: readonly string[] }): Promise<void>;
  /** Whether the App was removed from the repo, or from its owner's account. */
  isUninstalled(params: { readonly forge: ForgeName; readonly repo: string }): Promise<boolean>;
  isStopped(adapter: AdapterRef): Promise<boolean>;
  stop(adapter: AdapterRef): Promise<void>;
  start(adapter: AdapterRef): Promise<void>;
  /**
   * The acknowledgement the first release posted for a comment (before acknowledgements carried a marker),
   * so that a command queued before an upgrade and retried after it edits that one instead of posting another.
   */
  legacyAck(comment: { readonly forge: ForgeName; readonly repo: string; readonly commentId: string }): Promise<string | null>;
}
