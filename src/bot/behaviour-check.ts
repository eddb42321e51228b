import { measureBehaviour, type CheckSubject } from "../behaviour/measure-behaviour.js";
import type { PromptSet } from "../behaviour/schema.js";
import type { RepoConfig } from "../config/bot-config.js";
import type { BehaviourEvidence } from "../report/behaviour-schema.js";
import { variantFolderOf } from "../report/variant-folder.js";
import { REPO_ROOT } from "../storage/repo-files.js";
import type { JobContext } from "./context.js";
import { repoLogFields } from "./log-fields.js";

/** What the check needs beyond BOT_CONFIG, resolved once at start-up: the prompt set and each endpoint's token. */
export interface BehaviourSetup {
  readonly promptSet: PromptSet;
  /** By endpoint name: the value of the variable its `tokenEnv` names. Endpoints without `tokenEnv` have none. */
  readonly tokens: ReadonlyMap<string, string>;
  /** Injectable for tests; the global fetch otherwise. */
  readonly fetch?: typeof fetch;
}

/** The adapter id an endpoint is asked for: `org/name@<commit>` at the root, `org/name@<commit>/<folder>` in a folder. */
export function adapterIdAt(repo: string, commit: string, folder: string): string {
  return folder === REPO_ROOT ? `${repo}@${commit}` : `${repo}@${commit}/${folder}`;
}

/**
 * Asks the repo's inference endpoint the prompt set (and the repo's task prompts) for the original adapter, read at
 * `originalSha`, and for the variant committed at `patchedCommit`, and returns what it measured, or why it could not.
 * Null when no endpoint is configured. Endpoint problems never throw: they are evidence too (`not-measured`).
 */
export async function measureVariant(
  context: JobContext,
  params: {
    readonly repo: string;
    /** Whether the repo is private: its name stays out of the logs. */
    readonly isPrivate: boolean;
    /** The adapter folder ("." for the root). */
    readonly folder: string;
    readonly config: RepoConfig;
    /** The commit the original adapter was read at. */
    readonly originalSha: string;
    /** The pull request's commit holding the variant. */
    readonly patchedCommit: string;
    /** The aligned model the adapter is on (the pair's), checked against what the endpoint serves. */
    readonly alignedModel: string;
    readonly signal?: AbortSignal;
  },
): Promise<BehaviourEvidence | null> {
  const name = params.config.behaviour.endpoint;
  if (name === null) return null;
  // Validated when BOT_CONFIG and the repo's file were read; a name gone since (a restart with another BOT_CONFIG) is skipped.
  const endpoint = Object.hasOwn(context.config.inferenceEndpoints, name) ? context.config.inferenceEndpoints[name]! : null;
  if (!endpoint) return null;
  const measuredAt = new Date().toISOString();
  const notMeasured = (code: "unsupported", reason: string): BehaviourEvidence => ({ status: "not-measured", endpoint: { name, protocol: endpoint.protocol }, reason, code, measuredAt });
  // Endpoints load adapters by Hub id: an adapter in a GitHub repo is not somewhere they can read it.
  if (context.forge.name !== "hub") return notMeasured("unsupported", `the endpoint loads adapters from the Hub by id, and this adapter is on ${context.forge.name}`);
  if (endpoint.serves && !endpoint.serves.includes(params.alignedModel)) {
    return notMeasured("unsupported", `the endpoint does not serve ${params.alignedModel}, the model this adapter was trained on`);
  }
  const { repo, folder } = params;
  // The report goes into the repo's own pull request: its name is no secret there.
  const original = adapterIdAt(repo, params.originalSha, folder);
  const patched = adapterIdAt(repo, params.patchedCommit, variantFolderOf(folder));
  const subjects: CheckSubject[] = [
    { role: "original", adapterId: original, revision: params.originalSha, publicId: original },
    { role: "patched", adapterId: patched, revision: params.patchedCommit, publicId: patched },
  ];
  const log = context.log.child(repoLogFields(repo, params.isPrivate));
  log.info({ endpoint: name }, "behavioural check started");
  let lastLogged = 0;
  const measurement = await measureBehaviour({
    endpoint: { name, config: endpoint, token: context.behaviour.tokens.get(name) ?? null, ...(context.behaviour.fetch ? { fetch: context.behaviour.fetch } : {}) },
    promptSet: context.behaviour.promptSet,
    repoTask: params.config.behaviour.task,
    subjects,
    ...(params.signal ? { signal: params.signal } : {}),
    onProgress: (done, total) => {
      // Progress on long work, about every tenth of it: a check of a few hundred answers takes minutes on a real endpoint.
      if (done === total || done - lastLogged >= Math.max(1, Math.ceil(total / 10))) {
        lastLogged = done;
        log.info({ endpoint: name, done, total }, "behavioural check progress");
      }
    },
  });
  const { evidence } = measurement;
  log.info({ endpoint: name, status: evidence.status, ...(evidence.status === "not-measured" ? { code: evidence.code } : {}) }, "behavioural check finished");
  return evidence;
}
