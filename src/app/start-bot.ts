import { join } from "node:path";
import { pino } from "pino";
import { loadBotConfig } from "../config/bot-config.js";
import type { Env } from "../config/env.js";
import { SafeLoraError } from "../errors.js";
import { HubForge } from "../hub/hub-forge.js";
import { findHubToken } from "../hub/token.js";
import { AlignmentCache } from "../projection/alignment-cache.js";
import { SqliteJobQueue } from "../queue/sqlite-queue.js";
import { createBotServer, listen } from "../server/http-server.js";
import { BotState } from "./bot-state.js";
import type { BotContext } from "./context.js";
import { BotMetrics } from "./metrics.js";
import { queueScans } from "./reconcile.js";
import { Worker } from "./worker.js";

export interface RunningBot {
  readonly context: BotContext;
  /** The HTTP port, when the server runs. */
  readonly port: number | null;
  readonly worker: Worker | null;
  /** Graceful stop: no new webhooks, the running job finishes, the queue is closed. */
  stop(): Promise<void>;
}

/** The queue file under DATA_DIR, shared by `serve` and any `worker` processes. */
export const queuePath = (env: Env) => join(env.DATA_DIR, "safe-lora.db");

/** Connects to the Hub and opens the queue, state and cache: what serve, worker and backfill share. */
export async function createContext(env: Env, rawEnv: NodeJS.ProcessEnv): Promise<BotContext> {
  if (env.QUEUE_URL) {
    throw new SafeLoraError(`QUEUE_URL=${env.QUEUE_URL.replace(/\/\/[^@]*@/, "//…@")}: only the embedded SQLite queue is available in this version; unset QUEUE_URL`, "usage");
  }
  const config = loadBotConfig(env.BOT_CONFIG);
  const accessToken = findHubToken(rawEnv);
  const hub = { hubUrl: env.HF_ENDPOINT, ...(accessToken ? { accessToken } : {}) };
  const forge = await HubForge.connect(hub);
  const queue = new SqliteJobQueue(queuePath(env));
  const log = pino({ level: env.LOG_LEVEL, base: { bot: forge.bot.name } });
  return {
    forge,
    hub,
    queue,
    state: new BotState(queue.db),
    config,
    cache: new AlignmentCache(join(env.DATA_DIR, "alignment-cache"), env.SAFE_LORA_CACHE_GB * 1e9),
    executionProvider: env.SAFE_LORA_EP,
    log,
    metrics: new BotMetrics(queue),
  };
}

/** Starts the bot: the HTTP server (serve), a worker, or both, and the reconciliation scans. */
export async function startBot(env: Env, rawEnv: NodeJS.ProcessEnv, parts: { server: boolean; worker: boolean }): Promise<RunningBot> {
  if (parts.server && !env.HF_WEBHOOK_SECRET) {
    throw new SafeLoraError("HF_WEBHOOK_SECRET is not set: set it to the secret of the Hub webhook that points at this bot", "usage");
  }
  const context = await createContext(env, rawEnv);
  const worker = parts.worker
    ? new Worker(context, { leaseMs: env.SAFE_LORA_JOB_LEASE_SECONDS * 1000, pollMs: env.SAFE_LORA_POLL_MS, retryBaseMs: env.SAFE_LORA_RETRY_SECONDS * 1000 })
    : null;
  worker?.start();

  let port: number | null = null;
  const server = parts.server
    ? createBotServer(context, { webhookSecret: env.HF_WEBHOOK_SECRET!, statusToken: env.STATUS_TOKEN, onJob: () => worker?.poke() })
    : null;
  if (server) port = await listen(server, env.PORT);

  const { watch, reconcileMinutes } = context.config;
  const reconcile = async () => {
    try {
      const { repos, queued } = await queueScans(context, watch, "reconcile");
      context.log.info({ repos, queued }, "reconciliation scan");
      if (queued > 0) worker?.poke();
    } catch (error) {
      context.log.warn({ err: error }, "reconciliation scan failed; will try again");
    }
  };
  const timer = parts.server && watch.length > 0 && reconcileMinutes > 0 ? setInterval(() => void reconcile(), reconcileMinutes * 60_000) : null;
  if (timer) void reconcile();

  context.log.info({ port, worker: worker?.id ?? null, hub: env.HF_ENDPOINT, dataDir: env.DATA_DIR }, "safe-lora bot started");
  return {
    context,
    port,
    worker,
    async stop() {
      if (timer) clearInterval(timer);
      if (server) {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await closed;
      }
      await worker?.stop();
      await context.queue.close();
      context.log.info("safe-lora bot stopped");
    },
  };
}
