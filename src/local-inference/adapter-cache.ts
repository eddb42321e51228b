import { SafeLoraError } from "../errors.js";
import type { HubAccess } from "../hub/hub-access.js";
import { fetchModelInfo, HubRepoFiles } from "../hub/hub-repo-files.js";
import { REPO_ROOT } from "../storage/repo-files.js";
import { isCommitSha, type AdapterLocation } from "./adapter-id.js";
import type { CausalLm, LlamaLora } from "../llama/causal-lm.js";

/** Adapters kept loaded: a behavioural check asks for two (original, patched), a demo a few more. */
export const ADAPTER_CACHE_SIZE = 16;

const cacheKey = (repo: string, sha: string, folder: string) => `${repo}@${sha}${folder === REPO_ROOT ? "" : `/${folder}`}`;

/**
 * The adapters of one served model, loaded from a Hub on first use and kept (least recently used out past
 * ADAPTER_CACHE_SIZE, its session closed). Entries are keyed by commit, so an id naming a branch is re-pinned on
 * every request (one model-info call) and sees a push, while one naming a commit costs nothing once loaded.
 * Callers use an adapter only while no other get() can run (ModelRunner's turns), so none is closed under them.
 */
export class AdapterCache {
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used first.
  private readonly entries = new Map<string, Promise<LlamaLora>>();

  constructor(
    private readonly model: CausalLm,
    private readonly hub: HubAccess | null,
  ) {}

  /** Ids of the adapters loaded (or loading) now, most recently used last. */
  loaded(): string[] {
    return [...this.entries.keys()];
  }

  async get(location: AdapterLocation): Promise<LlamaLora> {
    const hub = this.hub;
    if (!hub) throw new SafeLoraError(`adapter ${location.id} asked for, but this endpoint has no Hub to read adapters from; start it with one`, "hub-not-found");
    const sha = isCommitSha(location.revision) ? location.revision : (await fetchModelInfo(hub, { id: location.repo, revision: location.revision })).sha;
    const key = cacheKey(location.repo, sha, location.folder);
    let entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
    } else {
      entry = this.load(hub, location, sha);
      // A failed load is not kept: the adapter may be pushed, or the Hub answer, on the next request.
      entry.catch(() => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      });
    }
    this.entries.set(key, entry);
    for (const [oldest, evicted] of this.entries) {
      if (this.entries.size <= ADAPTER_CACHE_SIZE) break;
      this.entries.delete(oldest);
      void evicted.then((lora) => this.model.closeLora(lora)).catch(() => undefined);
    }
    return entry;
  }

  private async load(hub: HubAccess, location: AdapterLocation, sha: string): Promise<LlamaLora> {
    const files = await HubRepoFiles.open(hub, { id: location.repo, revision: sha });
    try {
      return await this.model.openLora(files, location.folder);
    } finally {
      await files.close();
    }
  }
}
