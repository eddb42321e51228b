import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import type { BotContext } from "../bot/context.js";
import { coversRepo } from "../bot/coverage.js";
import { acceptWebhook } from "../bot/intake.js";
import { scanJobFor } from "../bot/scan-job.js";
import { resultOutcome, type JobOutcome } from "../bot/job-outcome.js";
import { parseHubWebhook } from "../hub/webhook-schema.js";
import { isRepoId } from "../hub/repo-ref.js";
import { escapeHtml, renderStatusPage } from "./status-page.js";

export interface ServerOptions {
  readonly webhookSecret: string;
  /** Shows private repos on `/` to whoever presents it; unset: private repos are always redacted. */
  readonly statusToken: string | undefined;
  /** Called after a job is stored, so an in-process worker starts at once. */
  readonly onJob?: () => void;
}

const MAX_BODY = 5 * 1024 * 1024;

/** Compares secrets in constant time (hashing first, so lengths leak nothing either). */
export function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

class BodyTooLarge extends Error {}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).byteLength;
    if (size > MAX_BODY) throw new BodyTooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function send(response: ServerResponse, status: number, body: unknown, type = "application/json"): void {
  response.writeHead(status, { "Content-Type": type }).end(type === "application/json" ? JSON.stringify(body) : String(body));
}

const RequestForm = z.object({ repo: z.string().trim().max(200).refine(isRepoId, "a Hub model id like org/name"), form_token: z.string().max(200) });

/**
 * A browser tells where a form post came from; one from another site is refused, so a page elsewhere cannot
 * make a visitor's browser (which may hold STATUS_TOKEN in a bookmarked URL) post requests.
 */
function crossSite(request: IncomingMessage): boolean {
  const site = request.headers["sec-fetch-site"];
  if (site !== undefined) return site !== "same-origin" && site !== "none";
  const origin = request.headers.origin;
  if (origin === undefined || origin === "null") return origin === "null";
  try {
    return new URL(origin).host !== request.headers.host;
  } catch {
    return true;
  }
}

/** Finished jobs of all time by outcome: done jobs by their result, plus failed ones. */
async function outcomeTotals(context: BotContext): Promise<Partial<Record<JobOutcome, number>>> {
  const totals: Partial<Record<JobOutcome, number>> = {};
  for (const [name, n] of Object.entries(await context.queue.doneOutcomes())) {
    const outcome = resultOutcome({ outcome: name });
    totals[outcome] = (totals[outcome] ?? 0) + n;
  }
  const failed = (await context.queue.counts()).failed;
  if (failed > 0) totals.failed = failed;
  return totals;
}

/**
 * `/healthz`'s job counts: the queue's states, with the refused jobs counted apart from `done` — the queue
 * has nothing to retry for them, but they patched nothing, and an operator must see them.
 */
async function jobCounts(context: BotContext): Promise<Record<string, number>> {
  const counts = await context.queue.counts();
  const refused = (await context.queue.doneOutcomes()).refused ?? 0;
  return { queued: counts.queued, running: counts.running, done: counts.done - refused, refused, failed: counts.failed };
}

const html = (text: string) => `<p>${text} <a href="/">Back</a></p>`;

/**
 * The bot's HTTP routes: POST /webhooks/hub, GET /healthz, GET /metrics, GET / (status page) and
 * POST /request (the status page's form). Webhook jobs are stored before the answer goes out.
 */
export function createBotServer(context: BotContext, options: ServerOptions): Server {
  // Ties the form to a page this process rendered (a per-process value: it holds no secret of anyone's).
  const formToken = randomBytes(16).toString("hex");
  const authorized = (request: IncomingMessage, url: URL) => {
    if (!options.statusToken) return false;
    const header = request.headers.authorization?.replace(/^Bearer\s+/i, "") ?? url.searchParams.get("token") ?? "";
    return sameSecret(header, options.statusToken);
  };

  const webhook = async (request: IncomingMessage, response: ServerResponse) => {
    const given = request.headers["x-webhook-secret"];
    if (typeof given !== "string" || given === "") {
      context.metrics.webhooks.inc({ outcome: "unauthorized" });
      return send(response, 401, { error: "missing X-Webhook-Secret" });
    }
    if (!sameSecret(given, options.webhookSecret)) {
      context.metrics.webhooks.inc({ outcome: "forbidden" });
      return send(response, 403, { error: "wrong X-Webhook-Secret" });
    }
    let json: unknown;
    try {
      json = JSON.parse((await readBody(request)).toString("utf8"));
    } catch (error) {
      context.metrics.webhooks.inc({ outcome: "malformed" });
      return send(response, error instanceof BodyTooLarge ? 413 : 400, { error: error instanceof BodyTooLarge ? "payload too large" : "payload is not JSON" });
    }
    const parsed = parseHubWebhook(json);
    if (!parsed.ok) {
      context.metrics.webhooks.inc({ outcome: "malformed" });
      return send(response, 400, { error: `not a Hub webhook payload (version 3): ${parsed.reason}` });
    }
    const result = await acceptWebhook(context, parsed.webhook);
    context.metrics.webhooks.inc({ outcome: result.outcome });
    if (result.outcome === "accepted") options.onJob?.();
    send(response, result.outcome === "accepted" ? 202 : 200, result);
  };

  const requestForm = async (request: IncomingMessage, response: ServerResponse) => {
    const page = "text/html; charset=utf-8";
    if (crossSite(request)) return send(response, 403, html("Requests are taken only from this bot's own status page."), page);
    const form = new URLSearchParams((await readBody(request)).toString("utf8"));
    const parsed = RequestForm.safeParse({ repo: form.get("repo") ?? "", form_token: form.get("form_token") ?? "" });
    if (!parsed.success) return send(response, 400, html("Not a repo id: use a Hub model id like org/name."), page);
    if (!sameSecret(parsed.data.form_token, formToken)) return send(response, 403, html("The form has expired: reload the status page and send it again."), page);
    const { repo } = parsed.data;
    const isOperator = authorized(request, new URL(request.url ?? "/", "http://localhost"));
    if (!isOperator && !coversRepo(context, repo)) {
      return send(response, 403, html("This bot works only for repos of organisations and users that installed its webhook (or that its operator watches); it will not act on this one. Its owner can install the webhook: see the bot's README."), page);
    }
    const head = await context.forge.head(repo).catch(() => null);
    if (!head || (head.private && !isOperator)) {
      return send(response, 404, html(`No model repo ${escapeHtml(repo)} that this bot can see.`), page);
    }
    await context.queue.enqueue(scanJobFor({ forge: "hub", repo: head.repo, sha: head.sha, private: head.private, reason: "request" }));
    options.onJob?.();
    response.writeHead(303, { Location: "/" }).end();
  };

  return createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    const route = `${request.method} ${url.pathname}`;
    const handle = async () => {
      switch (route) {
        case "POST /webhooks/hub":
          return webhook(request, response);
        case "GET /healthz": {
          // Unhealthy while claims fail, so that a supervisor restarts the process (whose start check then names the damage).
          const health = context.queue.health();
          // The database's own words are for the operator (STATUS_TOKEN) and the log, not for anyone who asks.
          if (!health.ok) return send(response, 503, { status: "unhealthy", reason: authorized(request, url) ? health.reason : "claiming jobs fails; see the bot's log", bot: context.forge.bot.name });
          return send(response, 200, { status: "ok", bot: context.forge.bot.name, jobs: await jobCounts(context) });
        }
        case "GET /metrics":
          return send(response, 200, await context.metrics.registry.metrics(), context.metrics.registry.contentType);
        case "GET /":
          return send(
            response,
            200,
            renderStatusPage(await context.queue.recent(50), {
              authorized: authorized(request, url),
              formToken,
              // The operator's token rides along with the form they post, as it came with the page they opened.
              formAction: authorized(request, url) && options.statusToken ? `/request?token=${encodeURIComponent(options.statusToken)}` : "/request",
              botName: context.forge.bot.name,
              prUrl: (repo, num) => context.forge.pullRequestUrl(repo, num),
              totals: await outcomeTotals(context),
            }),
            "text/html; charset=utf-8",
          );
        case "POST /request":
          return requestForm(request, response);
        default:
          return send(response, 404, { error: `no route ${route}` });
      }
    };
    handle().catch((error: unknown) => {
      context.log.error({ err: error, route }, "request failed");
      if (!response.headersSent) send(response, 500, { error: "internal error; see the bot's log" });
      else response.destroy();
    });
  });
}

export async function listen(server: Server, port: number, host = "0.0.0.0"): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return (server.address() as AddressInfo).port;
}
