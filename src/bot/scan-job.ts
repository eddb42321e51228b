import { createHash } from "node:crypto";
import type { RepoConfig } from "../config/bot-config.js";
import { formatSelection } from "../projection/selection.js";
import { findAdapterFolders } from "./adapters.js";
import type { BotContext } from "./context.js";
import { jobKeys, type ScanPayload } from "./job-payloads.js";
import { postConfigNotice } from "./notices.js";
import { loadRepoConfig } from "./repo-config.js";

/** What in a repo's configuration changes a patch: a change of any of these is a new patch job. */
export function configKey(config: RepoConfig): string {
  // Limits too: a refusal tells the repo to raise its own lowered limit, and promises a new try when it does.
  const relevant = [formatSelection(config.select), config.pair, config.allowModelTree, config.pullRequests, config.readmeSection, config.limits];
  return createHash("sha256").update(JSON.stringify(relevant)).digest("hex").slice(0, 16);
}

/**
 * A new head of main: find the LoRA adapters there and queue a patch job for each adapter folder whose files
 * or configuration changed since it was last queued (the job key says so: same files, same config, same key).
 */
export async function runScan(context: BotContext, payload: ScanPayload): Promise<unknown> {
  const { repo } = payload;
  if (context.config.excludeRepos.includes(repo)) return { skipped: "excluded by BOT_CONFIG" };
  const head = payload.sha ? null : await context.forge.head(repo);
  const files = await context.forge.open(repo, payload.sha ?? head!.sha);
  try {
    const loaded = await loadRepoConfig(context.config, files);
    if (!loaded.ok) {
      await postConfigNotice(context, repo, loaded.problem, loaded.fileKey);
      return { skipped: "invalid safe-lora.yaml", key: loaded.problem.key };
    }
    const { config } = loaded;
    if (!config.enabled) return { skipped: "disabled by safe-lora.yaml" };
    const adapters = await findAdapterFolders(files, config);
    const queued: string[] = [];
    const isPrivate = head?.private ?? files.private;
    for (const adapter of adapters) {
      if (context.state.isStopped(repo, adapter.folder)) continue;
      const { created } = await context.queue.enqueue({
        key: jobKeys.patch(repo, adapter.folder, adapter.filesKey, configKey(config)),
        kind: "patch",
        repo,
        private: isPrivate,
        payload: { repo, folder: adapter.folder, sha: files.sha, selection: null, command: null },
      });
      if (created) queued.push(adapter.folder);
    }
    return { sha: files.sha, adapters: adapters.map((a) => a.folder), queued };
  } finally {
    await files.close();
  }
}
