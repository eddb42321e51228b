import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import { DEFAULT_HUB_URL } from "../hub/hub-access.js";
import { ExecutionProviderChoice } from "../projection/execution-provider.js";

/**
 * The environment variables this project reads, validated in one place. README.md lists them all.
 * Empty strings count as unset, as shells and .env files often leave them. The Hub token is read by
 * hub/token.ts (HF_TOKEN, HF_TOKEN_PATH, HF_HOME) so that it never lands in a parsed config object.
 */
export const Env = z.object({
  /** Execution provider for the projection graph: auto, cpu, cuda or webgpu. */
  SAFE_LORA_EP: ExecutionProviderChoice.default("auto"),
  /** The Hub's base URL, as in the Python client. */
  HF_ENDPOINT: z.url({ protocol: /^https?$/ }).default(DEFAULT_HUB_URL),
  /** Where the bot keeps state: the job queue, its memory, the alignment cache. Not read by `patch`. */
  DATA_DIR: z.string().default("./.safe-lora"),
  /** The CLI's alignment cache folder; unset: $XDG_CACHE_HOME/safe-lora, else ~/.cache/safe-lora (cliCacheDir). */
  SAFE_LORA_CACHE_DIR: z.string().optional(),
  /** The XDG base directory for caches; only an absolute path counts, as the XDG spec says. */
  XDG_CACHE_HOME: z.string().optional(),
  /** Size limit of the alignment cache in GB (10^9 bytes). */
  SAFE_LORA_CACHE_GB: z.coerce.number().positive().default(20),
  /** Memory for a worker's warm pairs in MB (10^6 bytes): V of recently used pairs kept between jobs; 0 turns them off. */
  SAFE_LORA_WARM_PAIRS_MB: z.coerce.number().nonnegative().default(2048),
  /** The bot's HTTP port (7860, as on Docker Spaces). */
  PORT: z.coerce.number().int().min(0).max(65535).default(7860),
  /** The secret set in the Hub's webhook settings; required by `serve`. */
  HF_WEBHOOK_SECRET: z.string().optional(),
  /** Shows private repos on / to whoever presents it. */
  STATUS_TOKEN: z.string().optional(),
  /** Path of the bot-wide defaults (YAML). */
  BOT_CONFIG: z.string().optional(),
  /**
   * Unset: the embedded SQLite queue in DATA_DIR. `redis://…` or `rediss://…`: BullMQ on that Redis server, shared
   * by the web process and every worker. Not REDIS_URL: Probot reads that one for itself.
   */
  QUEUE_URL: z.url({ protocol: /^rediss?$/, error: "must be a redis:// or rediss:// URL (or unset, for the embedded queue)" }).optional(),
  /** The prefix of every key the bot keeps in QUEUE_URL's Redis, so that several bots (or tests) share one server. */
  SAFE_LORA_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9][\w.-]{0,63}$/, "letters, digits, '.', '_' or '-', at most 64").default("safe-lora"),
  /** The GitHub App's id (its settings page); with PRIVATE_KEY or PRIVATE_KEY_PATH and WEBHOOK_SECRET it turns the App on. */
  APP_ID: z.coerce.number().int().positive().optional(),
  /** The App's private key (PEM; literal `\n`s are read as newlines). Never logged. */
  PRIVATE_KEY: z.string().max(16_384, "is longer than any PEM key; set PRIVATE_KEY_PATH to the .pem file instead").optional(),
  /** A file holding the App's private key, instead of PRIVATE_KEY. */
  PRIVATE_KEY_PATH: z.string().max(4096).optional(),
  /** The secret set in the App's webhook settings (X-Hub-Signature-256). Not HF_WEBHOOK_SECRET: that one is the Hub's. */
  WEBHOOK_SECRET: z.string().min(8, "is too short for a webhook secret; use a long random string").optional(),
  /** GitHub's REST API (GitHub Enterprise: `https://<host>/api/v3`); unset: api.github.com. */
  GITHUB_API_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** The App's slug (its bot is `<slug>[bot]`); unset: asked of GitHub (`GET /app`) at startup. */
  GITHUB_APP_SLUG: z.string().regex(/^[a-z0-9][a-z0-9-]{0,33}$/, "must be the App's slug: lowercase letters, digits and '-'").optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** A worker's hold on a job without a heartbeat; a crashed worker's job is taken again after it. */
  SAFE_LORA_JOB_LEASE_SECONDS: z.coerce.number().positive().default(30),
  /** First retry delay of a failed job; doubles per attempt. */
  SAFE_LORA_RETRY_SECONDS: z.coerce.number().nonnegative().default(30),
  /** How often an idle worker looks for jobs queued by other processes. */
  SAFE_LORA_POLL_MS: z.coerce.number().int().positive().default(1000),
});
export type Env = z.infer<typeof Env>;

/**
 * What `patch` reads: a variable only `serve` uses (PORT, LOG_LEVEL, …) must not stop a one-off patch in a
 * shell that happens to set it for something else.
 */
export const PatchEnv = Env.pick({ SAFE_LORA_EP: true, HF_ENDPOINT: true, SAFE_LORA_CACHE_DIR: true, XDG_CACHE_HOME: true, SAFE_LORA_CACHE_GB: true });
export type PatchEnv = z.infer<typeof PatchEnv>;

/**
 * The CLI's alignment cache: a per-user cache, as command-line tools keep them, so that patching in any folder
 * reuses it and no folder gets a 20 GB `.safe-lora/` it did not ask for. The bot keeps its own in DATA_DIR.
 */
export function cliCacheDir(env: Pick<PatchEnv, "SAFE_LORA_CACHE_DIR" | "XDG_CACHE_HOME">, home: string = homedir()): string {
  if (env.SAFE_LORA_CACHE_DIR) return resolve(env.SAFE_LORA_CACHE_DIR);
  // A relative XDG_CACHE_HOME is invalid by the spec and is ignored, not resolved against whatever folder we run in.
  if (env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME)) return join(env.XDG_CACHE_HOME, "safe-lora");
  return join(home, ".cache", "safe-lora");
}

/** Validates the variables `schema` names and ignores all others. */
function parseEnv<Schema extends z.ZodObject>(schema: Schema, source: NodeJS.ProcessEnv): z.infer<Schema> {
  const present = Object.fromEntries(Object.entries(source).filter(([key, value]) => value !== undefined && value !== "" && key in schema.shape));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new SafeLoraError(`environment variable ${issue.path.join(".")}: ${issue.message}`, "usage");
  }
  return parsed.data;
}

/** Everything the bot (`serve`, `worker`, `backfill`, `demo`) reads. */
export function loadEnv(source: NodeJS.ProcessEnv = process.env): Env {
  return parseEnv(Env, source);
}

export function loadPatchEnv(source: NodeJS.ProcessEnv = process.env): PatchEnv {
  return parseEnv(PatchEnv, source);
}
