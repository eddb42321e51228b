import { totalmem } from "node:os";
import type { BotContext } from "../bot/context.js";
import { onForge } from "../bot/context.js";
import { queueScans } from "../bot/reconcile.js";
import { jobHandler } from "../bot/run-job.js";
import { detectWorkerCapabilities } from "../projection/worker-capabilities.js";
import type { JobRunner, WorkerCapabilities } from "../queue/job-queue.js";
import { redactedUrl } from "../queue/redis-connection.js";
import type { Env } from "../config/env.js";
import { SafeLoraError } from "../errors.js";
import { GITHUB_APP_REQUIRED, githubAppSettings } from "../github/app-env.js";
import { createBotServer, listen } from "../server/http-server.js";
import { githubWebhookRoute } from "../server/routes/github-webhook.js";
import { createBotContext, type BotContextOverrides } from "./create-bot-context.js";

export interface RunningBot {
  readonly context: BotContext;
  /** The HTTP port, when the server runs. */
  readonly port: number | null;
  readonly worker: JobRunner | null;
  /** Graceful stop: no new webhooks, the running job finishes, the queue is closed. */
  stop(): Promise<void>;
}

export interface StartBotParams {
  /** The parsed environment (loadEnv). */
  readonly env: Env;
  /** Serve HTTP: the webhooks, the status page, /healthz and /metrics (`serve`). */
  readonly server: boolean;
  /** Run jobs in this process (`serve` and `worker`). */
  readonly worker: boolean;
  /** Parts of the context built elsewhere (tests' fakes); the Hub token's environment. */
  readonly overrides?: BotContextOverrides;
}

/**
 * What this process's worker advertises: the provider its projections run on, found by opening the projection
 * session as a run would (a named provider that does not load stops the worker here, saying what is missing),
 * and why better ones were passed over — logged, so that an operator sees a GPU worker that runs on the CPU.
 */
async function workerCapabilities(context: BotContext): Promise<WorkerCapabilities> {
  const detected = await detectWorkerCapabilities(context.executionProvider);
  for (const note of detected.fallbacks) context.log.warn({ asked: context.executionProvider, passedOver: note }, "execution provider not used");
  return { executionProvider: detected.executionProvider, gpu: detected.gpu, memoryBytes: totalmem(), notes: detected.fallbacks };
}

/** Starts the bot: the HTTP server (serve), a worker, or both, and the reconciliation scans. */
export async function startBot({ env, server: serve, worker: work, overrides }: StartBotParams): Promise<RunningBot> {
  if (serve && !env.HF_WEBHOOK_SECRET) {
    throw new SafeLoraError("HF_WEBHOOK_SECRET is not set: set it to the secret of the Hub webhook that points at this bot", "usage");
  }
  // Checked before anything starts: a half-configured App is a usage error, not a Hub-only bot.
  const githubApp = await githubAppSettings(env);
  const context = await createBotContext(env, overrides);
  const worker = work
    ? context.queue.createRunner({
        leaseMs: env.SAFE_LORA_JOB_LEASE_SECONDS * 1000,
        pollMs: env.SAFE_LORA_POLL_MS,
        retryBaseMs: env.SAFE_LORA_RETRY_SECONDS * 1000,
        log: context.log,
        capabilities: await workerCapabilities(context),
      })
    : null;
  worker?.start(jobHandler(context));

  let port: number | null = null;
  const onJob = () => worker?.poke();
  if (serve && !githubApp) context.log.info(`GitHub App not configured (${GITHUB_APP_REQUIRED} unset): serving the Hub only`);
  const routes = serve && githubApp ? [await githubWebhookRoute({ context, app: githubApp, onJob })] : [];
  const server = serve ? createBotServer(context, { webhookSecret: env.HF_WEBHOOK_SECRET!, statusToken: env.STATUS_TOKEN, onJob, routes }) : null;
  if (server) port = await listen(server, env.PORT);

  const { watch, reconcileMinutes } = context.config;
  const reconcile = async () => {
    try {
      const { repos, queued } = await queueScans(onForge(context, context.forges.get("hub")), watch, "reconcile");
      context.log.info({ repos, queued }, "reconciliation scan");
      if (queued > 0) worker?.poke();
    } catch (error) {
      context.log.warn({ err: error }, "reconciliation scan failed; will try again");
    }
  };
  const timer = serve && watch.length > 0 && reconcileMinutes > 0 ? setInterval(() => void reconcile(), reconcileMinutes * 60_000) : null;
  if (timer) void reconcile();

  const queue = env.QUEUE_URL ? { queue: "bullmq", queueUrl: redactedUrl(env.QUEUE_URL), queuePrefix: env.SAFE_LORA_QUEUE_PREFIX } : { queue: "sqlite" };
  const github = serve && githubApp ? { github: { appId: githubApp.appId, api: githubApp.baseUrl ?? "https://api.github.com" } } : {};
  context.log.info({ port, worker: worker?.id ?? null, hub: env.HF_ENDPOINT, ...github, dataDir: env.DATA_DIR, ...queue }, "safe-lora bot started");
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
