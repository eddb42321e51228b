import { join } from "node:path";
import { pino } from "pino";
import type { BotContext } from "../bot/context.js";
import { BotMetrics } from "../bot/metrics.js";
import { loadPromptSet } from "../behaviour/load-prompt-set.js";
import type { BehaviourSetup } from "../bot/behaviour-check.js";
import { loadBotConfig, type BotConfig } from "../config/bot-config.js";
import type { Env } from "../config/env.js";
import { SafeLoraError } from "../errors.js";
import { forgeRegistry, type Forge } from "../forge/forge.js";
import { githubAppSettings } from "../github/app-env.js";
import { appInstallationTokens, GITHUB_API_URL, githubWebUrl, type GithubAccess } from "../github/github-access.js";
import { GithubForge } from "../github/github-forge.js";
import { HubForge } from "../hub/hub-forge.js";
import { findHubToken } from "../hub/token.js";
import { AlignmentCache } from "../projection/alignment-cache.js";
import { BullMqJobQueue } from "../queue/bullmq-queue.js";
import { RedisBotMemory } from "../queue/redis-bot-memory.js";
import { SqliteBotMemory } from "../queue/sqlite-bot-memory.js";
import { SqliteJobQueue } from "../queue/sqlite-queue.js";
import { legacyJobKey } from "../bot/legacy-job-keys.js";

/**
 * Parts of the context supplied instead of built from the environment (tests' fakes, another deployment's
 * pieces); whatever is not given is built as `serve` builds it.
 */
export interface BotContextOverrides extends Partial<BotContext> {
  /** Where the Hub token is looked up (HF_TOKEN, HF_TOKEN_PATH, HF_HOME); default: this process's environment. */
  readonly tokenEnv?: NodeJS.ProcessEnv;
}

/** The queue file under DATA_DIR, shared by `serve` and any `worker` processes. */
export const queuePath = (env: Env) => join(env.DATA_DIR, "safe-lora.db");

/**
 * Builds what serve, worker and backfill share, once: the bot's configuration, Hub access, the forge registry
 * (the Hub's forge), the queue with the bot's memory, the alignment cache, the log and the metrics. The queue's
 * runner is the queue's own (`queue.createRunner`), started by startBot.
 */
export async function createBotContext(env: Env, overrides: BotContextOverrides = {}): Promise<BotContext> {
  const config = overrides.config ?? loadBotConfig(env.BOT_CONFIG);
  const hub = overrides.hub ?? hubAccess(env, overrides.tokenEnv ?? process.env);
  const forges = overrides.forges ?? forgeRegistry([await HubForge.connect(hub), ...(await githubForge(env))]);
  const { queue, memory } =
    overrides.queue && overrides.memory ? { queue: overrides.queue, memory: overrides.memory } : env.QUEUE_URL ? await redisQueue(env, env.QUEUE_URL, overrides) : sqliteQueue(env, overrides);
  return {
    forges,
    hub,
    queue,
    memory,
    config,
    cache: overrides.cache !== undefined ? overrides.cache : new AlignmentCache(join(env.DATA_DIR, "alignment-cache"), env.SAFE_LORA_CACHE_GB * 1e9),
    warmPairs: overrides.warmPairs !== undefined ? overrides.warmPairs : env.SAFE_LORA_WARM_PAIRS_MB > 0 ? { maxBytes: env.SAFE_LORA_WARM_PAIRS_MB * 1e6 } : null,
    executionProvider: overrides.executionProvider ?? env.SAFE_LORA_EP,
    behaviour: overrides.behaviour ?? behaviourSetup(config, overrides.tokenEnv ?? process.env),
    log: overrides.log ?? pino({ level: env.LOG_LEVEL, base: { bot: forges.get("hub").bot.name } }),
    metrics: overrides.metrics ?? new BotMetrics(queue),
  };
}

/**
 * The GitHub App's forge when the App is configured (APP_ID, key, WEBHOOK_SECRET; README "The GitHub App"):
 * installation tokens per account from the App's key, its bot account read from GitHub once.
 */
async function githubForge(env: Env): Promise<Forge[]> {
  const settings = await githubAppSettings(env);
  if (!settings) return [];
  const apiUrl = settings.baseUrl ?? GITHUB_API_URL;
  const tokens = appInstallationTokens({ apiUrl }, { appId: settings.appId, privateKey: settings.privateKey });
  const access: GithubAccess = { apiUrl, webUrl: githubWebUrl(apiUrl), installationToken: tokens.installationToken, forgetInstallation: tokens.forgetInstallation };
  return [await GithubForge.connect(access, tokens.app, settings.slug ? { slug: settings.slug } : {})];
}

/**
 * The check's prompt set and the endpoints' tokens, read once so that a missing file or variable stops the bot at
 * start-up, saying which, rather than every job later.
 */
function behaviourSetup(config: BotConfig, tokenEnv: NodeJS.ProcessEnv): BehaviourSetup {
  const tokens = new Map<string, string>();
  for (const [name, endpoint] of Object.entries(config.inferenceEndpoints)) {
    if (!endpoint.tokenEnv) continue;
    const token = tokenEnv[endpoint.tokenEnv];
    if (!token) throw new SafeLoraError(`BOT_CONFIG inferenceEndpoints.${name}.tokenEnv names ${endpoint.tokenEnv}, which is not set; set it to the endpoint's token, or remove tokenEnv`, "usage");
    tokens.set(name, token);
  }
  return { promptSet: loadPromptSet(config.behaviourPromptSet), tokens };
}

function hubAccess(env: Env, tokenEnv: NodeJS.ProcessEnv) {
  const accessToken = findHubToken(tokenEnv);
  return { hubUrl: env.HF_ENDPOINT, ...(accessToken ? { accessToken } : {}) };
}

/**
 * BullMQ on QUEUE_URL's Redis, and the bot's memory beside it: what every process of a deployment shares, so
 * that web and workers on different machines need nothing else in common (each keeps its own DATA_DIR cache).
 */
async function redisQueue(env: Env, url: string, overrides: BotContextOverrides) {
  if (overrides.queue) throw new Error("createBotContext: a queue was given without the bot's memory; give both, or neither");
  let queue: BullMqJobQueue;
  try {
    queue = await BullMqJobQueue.connect({ url, prefix: env.SAFE_LORA_QUEUE_PREFIX });
  } catch (error) {
    // The message names the server without its password (redis-connection.ts).
    throw new SafeLoraError(`QUEUE_URL: ${error instanceof Error ? error.message : String(error)}; start Redis there, or unset QUEUE_URL for the embedded queue`, "queue-unavailable");
  }
  return { queue, memory: overrides.memory ?? new RedisBotMemory(queue.redis, queue.key("memory")) };
}

/** The embedded queue in DATA_DIR, and the bot's memory on the same file (one of them may be given). */
function sqliteQueue(env: Env, overrides: BotContextOverrides) {
  // The memory lives on the queue's database: another queue needs its own memory alongside.
  if (overrides.queue) throw new Error("createBotContext: a queue was given without the bot's memory; give both, or neither");
  const queue = new SqliteJobQueue(queuePath(env), { legacyJobKey });
  return { queue, memory: overrides.memory ?? new SqliteBotMemory(queue.db, queue.now) };
}
