import { createHash } from "node:crypto";
import { z } from "zod";
import type { RepoConfig } from "../config/bot-config.js";
import type { ForgeName } from "../forge/forge.js";
import { formatSelection } from "../projection/selection.js";
import { jobKey } from "../queue/job-key.js";
import type { NewJob } from "../queue/job-queue.js";
import { findAdapterFolders } from "./adapters.js";
import { onForge, type JobContext } from "./context.js";
import type { JobKindDefinition } from "./job-kinds.js";
import { postConfigNotice } from "./notices.js";
import { patchKey } from "./patch-job.js";
import { loadRepoConfig } from "./repo-config.js";

/** Why a scan was asked for. */
export const ScanReason = z.enum(["push", "reconcile", "backfill", "request", "start"]);
export type ScanReason = z.infer<typeof ScanReason>;

export const ScanPayload = z.object({
  repo: z.string(),
  /** The commit to scan; null: the head of main when the job runs. */
  sha: z.string().nullable(),
  reason: ScanReason,
});
export type ScanPayload = z.infer<typeof ScanPayload>;

/**
 * One scan per head, whoever asked (push, reconcile, backfill, the status page's form): the same head is
 * scanned once. A `start` command scans again, since what it covers changed without a new commit.
 */
export function scanKey(params: {
  /** The forge the repo lives on. */
  forge: ForgeName;
  repo: string;
  /** The commit scanned. */
  sha: string;
  reason: ScanReason;
}): string {
  return jobKey("scan", params.forge, params.repo, params.sha, ...(params.reason === "start" ? ["start"] : []));
}

/** The scan job of one repo head, ready to enqueue. */
export function scanJobFor(params: {
  /** The forge the repo lives on. */
  forge: ForgeName;
  repo: string;
  /** The commit to scan. */
  sha: string;
  private: boolean;
  reason: ScanReason;
}): NewJob {
  const { forge, repo, sha, reason } = params;
  return { key: scanKey(params), kind: "scan", forge, repo, private: params.private, payload: { repo, sha, reason } satisfies ScanPayload };
}

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
export async function runScan(context: JobContext, payload: ScanPayload): Promise<unknown> {
  const { repo } = payload;
  if (context.config.excludeRepos.includes(repo)) return { skipped: "excluded by BOT_CONFIG" };
  const head = payload.sha ? null : await context.forge.head(repo);
  const files = await context.forge.open({ repo, revision: payload.sha ?? head!.sha });
  try {
    const loaded = await loadRepoConfig(context.config, files, context.forge.repoConfigPath);
    if (!loaded.ok) {
      await postConfigNotice(context, { repo, problem: loaded.problem, fileKey: loaded.fileKey });
      return { skipped: `invalid ${context.forge.repoConfigPath}`, key: loaded.problem.key };
    }
    const { config } = loaded;
    if (!config.enabled) return { skipped: `disabled by ${context.forge.repoConfigPath}` };
    const adapters = await findAdapterFolders(files, config);
    const queued: string[] = [];
    const isPrivate = head?.private ?? files.private;
    for (const adapter of adapters) {
      if (await context.memory.isStopped({ forge: context.forge.name, repo, folder: adapter.folder })) continue;
      const { created } = await context.queue.enqueue({
        key: patchKey({ forge: context.forge.name, repo, folder: adapter.folder, filesKey: adapter.filesKey, configKey: configKey(config) }),
        kind: "patch",
        forge: context.forge.name,
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

export const scanJob: JobKindDefinition<ScanPayload> = {
  kind: "scan",
  payload: ScanPayload,
  run: (context, job) => runScan(onForge(context, job.forge), job.payload),
};
