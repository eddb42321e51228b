import { createHash } from "node:crypto";
import { z } from "zod";
import type { RepoConfig } from "../config/bot-config.js";
import type { ForgeName } from "../forge/forge.js";
import { formatSelection } from "../projection/selection.js";
import { jobKey } from "../queue/job-key.js";
import type { NewJob } from "../queue/job-queue.js";
import { findAdapterFolders } from "./adapters.js";
import { finetuneKey, type FinetunePayload } from "./finetune-job.js";
import { findFinetuneFolders } from "./finetunes.js";
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
 * or configuration changed since it was last queued (the job key says so: same files, same config, same key);
 * the same for full fine-tunes, whose jobs wait for a GPU worker when their config.json declares modules above
 * the CPU's cap.
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
    const forge = context.forge.name;
    /** One folder's job, unless the folder was stopped; a key already stored creates nothing. */
    const queueFor = async (folder: string, job: Pick<NewJob, "key" | "kind" | "payload" | "needs">) => {
      if (await context.memory.isStopped({ forge, repo, folder })) return;
      const { created } = await context.queue.enqueue({ ...job, forge, repo, private: isPrivate });
      if (created) queued.push(folder);
    };
    for (const { folder, filesKey } of adapters) {
      await queueFor(folder, {
        key: patchKey({ forge, repo, folder, filesKey, configKey: configKey(config) }),
        kind: "patch",
        payload: { repo, folder, sha: files.sha, selection: null, command: null },
      });
    }
    const { fullFinetunes } = context.config;
    const finetunes = fullFinetunes.enabled ? await findFinetuneFolders(files, config) : [];
    for (const { folder, filesKey, largestModuleElements } of finetunes) {
      // Above the CPU cap by its own config.json: only a GPU worker takes it (the job checks the real shapes again).
      const needsGpu = largestModuleElements !== null && largestModuleElements > fullFinetunes.maxCpuModuleElements;
      await queueFor(folder, {
        key: finetuneKey({ forge, repo, folder, filesKey, configKey: configKey(config) }),
        kind: "finetune",
        payload: { repo, folder, sha: files.sha, selection: null, command: null } satisfies FinetunePayload,
        ...(needsGpu ? { needs: "gpu" as const } : {}),
      });
    }
    return { sha: files.sha, adapters: adapters.map((a) => a.folder), ...(finetunes.length > 0 ? { finetunes: finetunes.map((f) => f.folder) } : {}), queued };
  } finally {
    await files.close();
  }
}

export const scanJob: JobKindDefinition<ScanPayload> = {
  kind: "scan",
  payload: ScanPayload,
  run: (context, job) => runScan(onForge(context, job.forge), job.payload),
};
