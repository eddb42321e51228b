import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { z } from "zod";
import type { BotContext } from "../../bot/context.js";
import { acceptEvent } from "../../bot/intake.js";
import { SafeLoraError } from "../../errors.js";
import type { GithubAppSettings } from "../../github/app-env.js";
import { parseGithubEvent } from "../../github/github-webhook.js";
import { BodyTooLarge, readBody, sendTooLarge } from "../http.js";

/** GitHub caps webhook payloads at 25 MB (a push of many commits can pass the Hub's 5 MB). */
const GITHUB_MAX_WEBHOOK_BYTES = 25 * 1024 * 1024;
import type { Route } from "../route.js";

/** Where GitHub delivers the App's webhooks (app.yml's hook_attributes.url). */
export const GITHUB_WEBHOOK_PATH = "/api/github/webhooks";

export interface GithubWebhookRouteParams {
  readonly context: BotContext;
  readonly app: GithubAppSettings;
  /** Called after a job is stored, so an in-process worker starts at once. */
  readonly onJob?: () => void;
}

/**
 * The part of Probot 14 this route uses. Probot's own type declarations widen `NodeJS.ProcessEnv` globally
 * (LOG_LEVEL as a union, APP_ID, …), which breaks type checks of unrelated code that builds environments; so
 * the module is loaded by a specifier TypeScript does not resolve, and typed here. The tests drive the real one.
 */
interface ProbotWebhookEvent {
  readonly id: string;
  readonly name: string;
  readonly payload: unknown;
}
interface Probot {
  /** An Octokit authenticated as the App (a JWT from its key). */
  auth(): Promise<{ request(route: string): Promise<{ data: unknown }> }>;
}
interface ProbotModule {
  createProbot(options: {
    readonly env: Record<string, string>;
    readonly overrides: { appId: number; privateKey: string; secret: string; log: Logger; baseUrl?: string };
  }): Probot;
  createNodeMiddleware(
    appFn: (app: { onAny(handler: (event: ProbotWebhookEvent) => Promise<void>): void }) => void,
    options: { readonly probot: Probot; readonly webhooksPath: string },
  ): Promise<(request: IncomingMessage, response: ServerResponse) => Promise<boolean | void> | boolean | void>;
}
const PROBOT: string = "probot";

/** An error whose `status` Probot's middleware answers with (it reads the first handler error's `status`). */
function answered(status: number, message: string): Error {
  return Object.assign(new Error(message), { status });
}

const AppInfo = z.looseObject({ slug: z.string().regex(/^[a-z0-9][a-z0-9-]{0,33}$/) });

/** The App's slug from `GET /app` (authenticated as the App with its key), when GITHUB_APP_SLUG does not give it. */
async function appSlug(probot: Probot, app: GithubAppSettings): Promise<string> {
  if (app.slug) return app.slug;
  try {
    const octokit = await probot.auth();
    return AppInfo.parse((await octokit.request("GET /app")).data).slug;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new SafeLoraError(`could not ask GitHub for the App's slug (GET /app at ${app.baseUrl ?? "https://api.github.com"}: ${why}); set GITHUB_APP_SLUG, or check APP_ID and the key`, "usage", { cause: error });
  }
}

/**
 * POST /api/github/webhooks: Probot's middleware checks X-Hub-Signature-256 on the raw body (a bad one is
 * answered 400 before any handler runs), then the one handler translates the delivery (src/github/github-webhook.ts)
 * and hands it to the bot's intake, which stores the job before the answer goes out. Handlers only enqueue:
 * Probot answers 202 by itself after 9 s, and GitHub does not wait longer.
 */
export async function githubWebhookRoute({ context, app, onJob }: GithubWebhookRouteParams): Promise<Route> {
  const { createProbot, createNodeMiddleware } = (await import(PROBOT)) as ProbotModule;
  const log = context.log.child({ forge: "github" });
  const probot = createProbot({
    // Nothing from process.env: Probot would read REDIS_URL, LOG_LEVEL and a second copy of the key from there.
    env: {},
    overrides: { appId: app.appId, privateKey: app.privateKey, secret: app.webhookSecret, log, ...(app.baseUrl ? { baseUrl: app.baseUrl } : {}) },
  });
  const slug = await appSlug(probot, app);

  const middleware = await createNodeMiddleware(
    (probotApp) => {
      probotApp.onAny(async ({ id, name, payload }) => {
        const parsed = parseGithubEvent(name, payload, { appSlug: slug });
        if (!parsed.ok) {
          context.metrics.webhooks.inc({ outcome: "malformed" });
          throw answered(400, `not a GitHub webhook payload the bot reads: ${parsed.reason}`);
        }
        // Installing is the consent, removing withdraws it: a removed repo's jobs are refused (bot/run-job.ts).
        const removed = [...(parsed.removedRepos ?? []), ...(parsed.removedOwner ? [parsed.removedOwner] : [])];
        const added = [...(parsed.addedRepos ?? []), ...(parsed.addedOwner ? [parsed.addedOwner] : [])];
        if (removed.length > 0) {
          await context.memory.uninstall({ forge: "github", names: removed });
          log.info({ delivery: id, installationId: parsed.installationId, removedRepos: parsed.removedRepos, removedOwner: parsed.removedOwner }, "GitHub App removed from repositories");
        }
        if (added.length > 0) await context.memory.reinstall({ forge: "github", names: added });
        let result: Awaited<ReturnType<typeof acceptEvent>>;
        try {
          result = await acceptEvent(context, parsed.event);
        } catch (error) {
          if (error instanceof SafeLoraError && error.code === "usage") {
            // The deployment cannot take it at all (no GitHub forge in the registry): delivering again changes nothing.
            log.error({ err: error, delivery: id }, "a GitHub webhook the bot cannot take");
            throw answered(500, `the bot cannot take this event: ${error.message}`);
          }
          context.metrics.webhooks.inc({ outcome: "unavailable" });
          log.error({ err: error, delivery: id }, "could not store the webhook's job; answered 503 (redeliver it from the App's advanced settings)");
          throw answered(503, "the bot cannot store jobs right now; deliver this webhook again later");
        }
        context.metrics.webhooks.inc({ outcome: result.outcome });
        log.debug({ delivery: id, event: name, ...result }, "GitHub webhook");
        if (result.outcome === "accepted") onJob?.();
      });
    },
    { probot, webhooksPath: GITHUB_WEBHOOK_PATH },
  );

  return {
    method: "POST",
    path: GITHUB_WEBHOOK_PATH,
    async handle(request, response) {
      let body: Buffer;
      try {
        body = await readBody(request, GITHUB_MAX_WEBHOOK_BYTES);
      } catch (error) {
        if (!(error instanceof BodyTooLarge)) throw error;
        context.metrics.webhooks.inc({ outcome: "malformed" });
        return sendTooLarge(response);
      }
      // The body is read here, with the server's size cap; Probot takes a string body as the raw one it signs.
      (request as IncomingMessage & { body?: string }).body = body.toString("utf8");
      await middleware(request, response);
    },
  };
}
