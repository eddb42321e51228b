import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createBotContext } from "../../src/app/create-bot-context.js";
import type { BotContext } from "../../src/bot/context.js";
import { loadEnv } from "../../src/config/env.js";
import { createBotServer, listen } from "../../src/server/http-server.js";
import type { Route } from "../../src/server/route.js";
import { forgeRegistry } from "../../src/forge/forge.js";
import { MemoryForge } from "../helpers/memory-forge.js";

const SECRET = "route-test-secret";

/** The shape of Probot's createNodeMiddleware: answers its own path and says whether it did. */
function probotShapedMiddleware(seen: string[]) {
  return async (request: IncomingMessage, response: ServerResponse): Promise<boolean> => {
    let body = "";
    for await (const chunk of request) body += String(chunk);
    seen.push(`${String(request.headers["x-github-event"])} ${body}`);
    response.writeHead(200, { "Content-Type": "text/plain" }).end("ok\n");
    return true;
  };
}

let work: string;
let context: BotContext;
let server: Server | null;
beforeEach(async () => {
  work = mkdtempSync(join(tmpdir(), "safe-lora-routes-"));
  const forge = new MemoryForge();
  forge.createRepo({ repo: "acme/adapter" });
  context = await createBotContext(loadEnv({ DATA_DIR: join(work, "data"), LOG_LEVEL: "silent" }), { forges: forgeRegistry([forge]), tokenEnv: {} });
  server = null;
});
afterEach(async () => {
  if (server) await new Promise((resolve) => server!.close(resolve));
  await context.queue.close();
  rmSync(work, { recursive: true, force: true });
});

async function start(routes: Route[]): Promise<string> {
  server = createBotServer(context, { webhookSecret: SECRET, statusToken: undefined, routes });
  return `http://127.0.0.1:${await listen(server, 0, "127.0.0.1")}`;
}

describe("the server's routes are a list", () => {
  it("mounts another forge's webhook receiver at /api/github/webhooks next to the Hub's route", async () => {
    const seen: string[] = [];
    const github = probotShapedMiddleware(seen);
    const base = await start([{ method: "POST", path: "/api/github/webhooks", handle: async (request, response) => void (await github(request, response)) }]);

    const delivery = await fetch(`${base}/api/github/webhooks`, { method: "POST", headers: { "X-GitHub-Event": "push" }, body: '{"ref":"refs/heads/main"}' });
    expect(delivery.status).toBe(200);
    expect(seen).toEqual(['push {"ref":"refs/heads/main"}']);

    // The Hub's route is still there, secret check first, and hands a real delivery to the intake.
    expect((await fetch(`${base}/webhooks/hub`, { method: "POST", body: "{}" })).status).toBe(401);
    const push = readFileSync(new URL("../fixtures/hub-payloads/repo-content-main-push.json", import.meta.url), "utf8");
    const hub = await fetch(`${base}/webhooks/hub`, { method: "POST", headers: { "X-Webhook-Secret": SECRET, "Content-Type": "application/json" }, body: push });
    expect(hub.status).toBe(202);
    expect(await context.queue.counts()).toMatchObject({ queued: 1 });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it("answers 404 for a path or method no route has, and 500 (logged, nothing leaked) when a handler throws", async () => {
    const base = await start([
      {
        method: "GET",
        path: "/boom",
        handle: () => {
          throw new Error("a secret detail");
        },
      },
    ]);
    const missing = await fetch(`${base}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: "no route GET /nope" });
    expect((await fetch(`${base}/api/github/webhooks`, { method: "POST" })).status).toBe(404);
    expect((await fetch(`${base}/webhooks/hub`)).status).toBe(404);
    const failed = await fetch(`${base}/boom`);
    expect(failed.status).toBe(500);
    expect(await failed.text()).not.toContain("secret detail");
  });

  it("refuses two routes for the same method and path", () => {
    const again: Route = { method: "POST", path: "/webhooks/hub", handle: () => undefined };
    expect(() => createBotServer(context, { webhookSecret: SECRET, statusToken: undefined, routes: [again] })).toThrow("two routes for POST /webhooks/hub");
  });
});
