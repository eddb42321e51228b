import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { BotContext } from "../bot/context.js";
import { sameSecret, send } from "./http.js";
import type { Route, RouteDeps, ServerOptions } from "./route.js";
import { healthzRoute } from "./routes/healthz.js";
import { hubWebhookRoute } from "./routes/hub-webhook.js";
import { metricsRoute } from "./routes/metrics.js";
import { requestRoute } from "./routes/request.js";
import { statusRoute } from "./routes/status.js";

/**
 * The bot's own routes: POST /webhooks/hub, GET /healthz, GET /metrics, GET / (status page) and POST /request
 * (the status page's form).
 */
function botRoutes(deps: RouteDeps): Route[] {
  return [hubWebhookRoute(deps), healthzRoute(deps), metricsRoute(deps), statusRoute(deps), requestRoute(deps)];
}

/** A server that answers each request by the route of its method and path, 404 when none matches. */
function routedServer({ routes, log }: { readonly routes: readonly Route[]; readonly log: Logger }): Server {
  const byKey = new Map<string, Route>();
  for (const route of routes) {
    const key = `${route.method} ${route.path}`;
    if (byKey.has(key)) throw new Error(`two routes for ${key}`);
    byKey.set(key, route);
  }
  return createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    const key = `${request.method} ${url.pathname}`;
    const handle = async () => {
      const route = byKey.get(key);
      if (!route) return send(response, 404, { error: `no route ${key}` });
      await route.handle(request, response, url);
    };
    handle().catch((error: unknown) => {
      log.error({ err: error, route: key }, "request failed");
      if (!response.headersSent) send(response, 500, { error: "internal error; see the bot's log" });
      else response.destroy();
    });
  });
}

/** The bot's HTTP server: its own routes and `options.routes`. Webhook jobs are stored before the answer goes out. */
export function createBotServer(context: BotContext, options: ServerOptions): Server {
  const deps: RouteDeps = {
    context,
    options,
    formToken: randomBytes(16).toString("hex"),
    isOperator: (request: IncomingMessage, url: URL) => {
      if (!options.statusToken) return false;
      const given = request.headers.authorization?.replace(/^Bearer\s+/i, "") ?? url.searchParams.get("token") ?? "";
      return sameSecret(given, options.statusToken);
    },
  };
  return routedServer({ routes: [...botRoutes(deps), ...(options.routes ?? [])], log: context.log });
}

export async function listen(server: Server, port: number, host = "0.0.0.0"): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return (server.address() as AddressInfo).port;
}
