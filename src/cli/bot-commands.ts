import { parseArgs, type ParseArgsConfig } from "node:util";
import { createBotContext } from "../app/create-bot-context.js";
import { startBot } from "../app/start-bot.js";
import { onForge } from "../bot/context.js";
import { queueScans } from "../bot/reconcile.js";
import { loadEnv } from "../config/env.js";
import { SafeLoraError } from "../errors.js";
import type { CliIo } from "./io.js";

export const SERVE_HELP = `Usage: safe-lora serve [--web-only]   (same as npm start)
       safe-lora worker               (same as npm run worker)

serve: the Hub bot — POST /webhooks/hub, GET /healthz, GET /metrics, GET / — with an in-process worker;
       --web-only: no worker in this process (jobs wait for \`safe-lora worker\` processes).
worker: a worker only, taking jobs from the same queue: QUEUE_URL's Redis, else DATA_DIR/safe-lora.db.

Required:
  HF_TOKEN            the bot account's Hub token (write: it opens pull requests); or the token file
                      huggingface-cli writes (HF_TOKEN_PATH, else $HF_HOME/token, else ~/.cache/huggingface/token)
  HF_WEBHOOK_SECRET   the secret set on the Hub webhook that points at the bot (serve only)
Often set:
  DATA_DIR            the queue, the bot's memory and the alignment cache; persistent storage (default ./.safe-lora)
  QUEUE_URL           redis://… : BullMQ on that Redis, shared by web and workers on any machines (each its own
                      DATA_DIR); unset: the embedded queue in DATA_DIR (one machine)
  BOT_CONFIG          the bot-wide defaults (YAML): select, limits, watch, trustedModels, …
  PORT                HTTP port (default 7860); STATUS_TOKEN shows private repos on / and the database's errors
  HF_ENDPOINT         the Hub (default https://huggingface.co)
GitHub App (all three, or none: then the Hub only):
  APP_ID, PRIVATE_KEY or PRIVATE_KEY_PATH, WEBHOOK_SECRET   the App registered from app.yml; its webhook is
                      POST /api/github/webhooks (GITHUB_API_URL for GitHub Enterprise)
Every variable: README.md, "Environment". SIGTERM drains: the running job finishes.`;

/** The flags of serve and worker (`webOnly`: serve's only one); null after --help was answered. */
function botFlags(args: string[], help: string, io: CliIo, accepts: { webOnly: boolean }): { webOnly: boolean } | null {
  let values: { help?: boolean; "web-only"?: boolean };
  try {
    const options: ParseArgsConfig["options"] = { help: { type: "boolean", short: "h" } };
    if (accepts.webOnly) options["web-only"] = { type: "boolean" };
    ({ values } = parseArgs({ args, strict: true, allowPositionals: false, options }));
  } catch (error) {
    throw new SafeLoraError(`${(error as Error).message}; see --help`, "usage");
  }
  if (values.help) {
    io.stdout(`${help}\n`);
    return null;
  }
  return { webOnly: values["web-only"] === true };
}

/** Runs until SIGTERM or SIGINT, then drains and returns 0. */
async function runUntilSignal(parts: { server: boolean; worker: boolean }, io: CliIo): Promise<number> {
  const bot = await startBot({ env: loadEnv(io.env), ...parts, overrides: { tokenEnv: io.env } });
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  await bot.stop();
  return 0;
}

export async function serveCommand(args: string[], io: CliIo): Promise<number> {
  const flags = botFlags(args, SERVE_HELP, io, { webOnly: true });
  if (!flags) return 0;
  return runUntilSignal({ server: true, worker: !flags.webOnly }, io);
}

export async function workerCommand(args: string[], io: CliIo): Promise<number> {
  if (!botFlags(args, SERVE_HELP, io, { webOnly: false })) return 0;
  return runUntilSignal({ server: false, worker: true }, io);
}

export const BACKFILL_HELP = `Usage: safe-lora backfill <org | user | org/repo> [...]

Queues a scan of every model repo of the given organisations or users (or of the given repos), for adapters
that existed before the bot was installed. A running \`safe-lora serve\` or \`worker\` on the same DATA_DIR does the work.`;

export async function backfillCommand(args: string[], io: CliIo): Promise<number> {
  let positionals: string[];
  try {
    const parsed = parseArgs({ args, strict: true, allowPositionals: true, options: { help: { type: "boolean", short: "h" } } });
    if (parsed.values.help) {
      io.stdout(`${BACKFILL_HELP}\n`);
      return 0;
    }
    positionals = parsed.positionals;
  } catch (error) {
    throw new SafeLoraError(`${(error as Error).message}; see safe-lora backfill --help`, "usage");
  }
  if (positionals.length === 0) throw new SafeLoraError("name at least one organisation, user or repo; see safe-lora backfill --help", "usage");
  const context = await createBotContext(loadEnv(io.env), { tokenEnv: io.env });
  try {
    const { repos, queued } = await queueScans(onForge(context, context.forges.get("hub")), positionals, "backfill");
    io.stdout(`queued ${queued} scan${queued === 1 ? "" : "s"} for ${repos} repo${repos === 1 ? "" : "s"} (heads already scanned are skipped)\n`);
    return 0;
  } finally {
    await context.queue.close();
  }
}
