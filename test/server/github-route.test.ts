import { createHmac, generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startBot, type RunningBot } from "../../src/app/start-bot.js";
import { loadEnv } from "../../src/config/env.js";
import { forgeRegistry } from "../../src/forge/forge.js";
import { LocalGitHub } from "../../src/local-github/server.js";
import { appBot, example, pushAdding } from "../github/webhook-examples.js";
import { MemoryForge } from "../helpers/memory-forge.js";

const HUB_SECRET = "hub-route-secret";
const WEBHOOK_SECRET = "github-app-webhook-secret";
const SLUG = "safe-lora";
const REPO = "Codertocat/Hello-World";
const SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
// A real key, as GitHub generates one for an App: Probot refuses to start without a private key.
const PRIVATE_KEY = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString();
const APP_ENV = { APP_ID: "123456", PRIVATE_KEY, WEBHOOK_SECRET, GITHUB_APP_SLUG: SLUG };

let work: string;
let bot: RunningBot | null = null;
let logged: Array<Record<string, unknown>>;

/** The bot as `serve` starts it (no worker), on a temporary DATA_DIR, with `extra` in its environment and its log kept. */
async function serve(extra: Record<string, string>, options: { githubForge?: boolean } = {}): Promise<string> {
  work = mkdtempSync(join(tmpdir(), "safe-lora-github-route-"));
  logged = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logged.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      done();
    },
  });
  // The Hub's forge, and a stand-in for GitHub's that only names the App's bot account: the intake asks a forge
  // for its bot to tell the bot's own comments from commands (the GitHub forge is built elsewhere).
  const github = options.githubForge === false ? [] : [new MemoryForge({ id: "41898282", name: `${SLUG}[bot]` }, "github")];
  const forges = forgeRegistry([new MemoryForge(), ...github]);
  const env = loadEnv({ HF_WEBHOOK_SECRET: HUB_SECRET, DATA_DIR: join(work, "data"), PORT: "0", ...extra });
  bot = await startBot({ env, server: true, worker: false, overrides: { forges, tokenEnv: {}, cache: null, log: pino({ level: "debug" }, sink) } });
  return `http://127.0.0.1:${bot.port}`;
}

afterEach(async () => {
  await bot?.stop();
  bot = null;
  rmSync(work, { recursive: true, force: true });
});

const sign = (body: string, secret = WEBHOOK_SECRET) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

/** One delivery as GitHub sends it: JSON, the event's name, a delivery id, the body's HMAC with the App's secret. */
function deliver(base: string, event: string, payload: unknown, options: { signature?: string; delivery?: string } = {}) {
  const body = typeof payload === "string" ? payload : JSON.stringify(payload);
  return fetch(`${base}/api/github/webhooks`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "X-GitHub-Event": event,
      "X-GitHub-Delivery": options.delivery ?? randomUUID(),
      "X-Hub-Signature-256": options.signature ?? sign(body),
    },
    body,
  });
}

const jobs = async () => (await bot!.context.queue.recent(100)).reverse();

describe("the GitHub App's webhook route, through Probot on the bot's server", () => {
  it("a signed push adding an adapter is answered 2xx after its scan job is stored", async () => {
    const base = await serve(APP_ENV);
    const answer = await deliver(base, "push", pushAdding(["adapters/chat/adapter_config.json"]));
    expect(answer.status).toBe(200);
    expect(await jobs()).toMatchObject([{ kind: "scan", forge: "github", repo: REPO, private: false, payload: { repo: REPO, sha: SHA, reason: "push" }, state: "queued" }]);
    // The Hub's route is still served beside it.
    expect((await fetch(`${base}/webhooks/hub`, { method: "POST", body: "{}" })).status).toBe(401);
  });

  it("the same push delivered twice (GitHub's redelivery) is one job", async () => {
    const base = await serve(APP_ENV);
    const push = pushAdding(["adapter_config.json"]);
    const delivery = randomUUID();
    expect((await deliver(base, "push", push, { delivery })).status).toBe(200);
    expect((await deliver(base, "push", push, { delivery })).status).toBe(200);
    expect(await jobs()).toHaveLength(1);
  });

  it("a bad or missing signature is refused before any handler runs: no job", async () => {
    const base = await serve(APP_ENV);
    const push = JSON.stringify(pushAdding(["adapter_config.json"]));
    const wrongSecret = await deliver(base, "push", push, { signature: sign(push, "not-the-secret") });
    expect(wrongSecret.status).toBe(400);
    expect(await wrongSecret.text()).toContain("signature does not match");
    const tampered = await deliver(base, "push", push.replace(SHA, "f".repeat(40)), { signature: sign(push) });
    expect(tampered.status).toBe(400);
    const unsigned = await fetch(`${base}/api/github/webhooks`, { method: "POST", headers: { "Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": randomUUID() }, body: push });
    expect(unsigned.status).toBe(400);
    expect(await jobs()).toEqual([]);
  });

  it("the App's own comment and a push not touching an adapter make no job; a member's command does", async () => {
    const base = await serve(APP_ENV);
    const own = example("issue_comment", (payload) => payload.action === "created");
    own.sender = appBot(SLUG);
    own.comment.user = appBot(SLUG);
    own.comment.body = `@${SLUG}[bot] repatch`;
    expect((await deliver(base, "issue_comment", own)).status).toBe(200);
    expect((await deliver(base, "push", example("push", (payload) => payload.ref === "refs/heads/master"))).status).toBe(200);
    expect(await jobs()).toEqual([]);

    const command = example("issue_comment", (payload) => payload.action === "created");
    command.comment.body = `@${SLUG}[bot] repatch top-k=3`;
    expect((await deliver(base, "issue_comment", command)).status).toBe(200);
    expect(await jobs()).toMatchObject([{ kind: "command", forge: "github", repo: REPO, payload: { discussion: 1, isPullRequest: false, commentId: "492700400" } }]);
  });

  it("a malformed payload with a good signature is answered 400 naming the field; an oversized body 413; no job", async () => {
    const base = await serve(APP_ENV);
    const push = pushAdding(["adapter_config.json"]);
    push.repository.full_name = "Codertocat/..";
    const malformed = await deliver(base, "push", push);
    expect(malformed.status).toBe(400);
    expect(await malformed.text()).toContain("repository.full_name: must be a repository's full name like owner/name");
    const huge = await deliver(base, "push", JSON.stringify({ ...pushAdding(["adapter_config.json"]), padding: "x".repeat(26 * 1024 * 1024) }));
    expect(huge.status).toBe(413);
    expect(await jobs()).toEqual([]);
  });

  it("a job that cannot be stored is answered 503; a command for a forge the bot does not serve 500, saying so", async () => {
    const base = await serve(APP_ENV, { githubForge: false });
    const command = example("issue_comment", (payload) => payload.action === "created");
    command.comment.body = `@${SLUG}[bot] repatch`;
    const noForge = await deliver(base, "issue_comment", command);
    expect(noForge.status).toBe(500);
    expect(await noForge.text()).toContain('the bot cannot take this event: this bot does not serve the forge \\"github\\" (it serves hub)');
    // A push needs no forge to be stored; with the queue's database gone it cannot be.
    await bot!.context.queue.close();
    const unavailable = await deliver(base, "push", pushAdding(["adapter_config.json"]));
    expect(unavailable.status).toBe(503);
    expect(await unavailable.text()).toContain("the bot cannot store jobs right now; deliver this webhook again later");
    expect(logged).toContainEqual(expect.objectContaining({ msg: "could not store the webhook's job; answered 503 (redeliver it from the App's advanced settings)" }));
  });

  it("an installation removed makes no job and is logged with its repositories", async () => {
    const base = await serve(APP_ENV);
    expect((await deliver(base, "installation", example("installation", (payload) => payload.action === "deleted"))).status).toBe(200);
    expect(await jobs()).toEqual([]);
    expect(logged).toContainEqual(expect.objectContaining({ msg: "GitHub App removed from repositories", removedRepos: ["octocat/Hello-World"], removedOwner: "octocat", installationId: 2 }));
    // Remembered, so that the account's jobs are refused from now on (bot/run-job.ts), until it installs the App again.
    expect(await bot!.context.memory.isUninstalled({ forge: "github", repo: "octocat/Hello-World" })).toBe(true);
    expect(await bot!.context.memory.isUninstalled({ forge: "github", repo: "octocat/other" })).toBe(true);
    // Another account (Codertocat) installing the App leaves octocat's removal as it was, and covers Codertocat's.
    await bot!.context.memory.uninstall({ forge: "github", names: ["Codertocat"] });
    expect((await deliver(base, "installation", example("installation", (payload) => payload.action === "created"))).status).toBe(200);
    expect(await bot!.context.memory.isUninstalled({ forge: "github", repo: "octocat/Hello-World" })).toBe(true);
    expect(await bot!.context.memory.isUninstalled({ forge: "github", repo: "Codertocat/Hello-World" })).toBe(false);
    expect(JSON.stringify(logged)).not.toContain("PRIVATE KEY");
    expect(JSON.stringify(logged)).not.toContain(WEBHOOK_SECRET);
  });
});

describe("starting the bot with or without the App", () => {
  it("unconfigured: the route is absent (404) and the startup log says the bot serves the Hub only", async () => {
    const base = await serve({});
    expect((await deliver(base, "push", pushAdding(["adapter_config.json"]))).status).toBe(404);
    expect(logged.map((line) => line.msg)).toContain("GitHub App not configured (APP_ID, PRIVATE_KEY or PRIVATE_KEY_PATH, WEBHOOK_SECRET unset): serving the Hub only");
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it("half configured: refuses to start, naming what is missing", async () => {
    await expect(serve({ APP_ID: "123456", WEBHOOK_SECRET })).rejects.toThrow(
      "the GitHub App is half configured: PRIVATE_KEY or PRIVATE_KEY_PATH unset; set all of APP_ID, PRIVATE_KEY or PRIVATE_KEY_PATH, WEBHOOK_SECRET to serve GitHub, or none of them to serve the Hub only",
    );
    expect(bot).toBeNull();
  });
});

describe("deliveries from the local GitHub", () => {
  let github: LocalGitHub;
  beforeEach(async () => {
    github = await new LocalGitHub().start();
  });
  afterEach(() => github.close());

  it("the slug from GET /app; a push with an adapter is a job, the App's own comment none, an uninstall logged", async () => {
    const keys = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
    const { store } = github;
    const app = store.addApp({ name: "Safe LoRA", publicKey: keys.publicKey, events: ["push", "issue_comment", "installation", "installation_repositories"] });
    // No GITHUB_APP_SLUG: the bot asks GET /app, authenticated with a JWT from its key.
    const base = await serve({ APP_ID: String(app.id), PRIVATE_KEY: keys.privateKey, WEBHOOK_SECRET, GITHUB_API_URL: github.url });
    expect(github.requests).toEqual([{ method: "GET", path: "/app" }]);
    expect(logged).toContainEqual(expect.objectContaining({ msg: "safe-lora bot started", github: { appId: app.id, api: github.url } }));
    github.webhooks.subscribe(app, `${base}/api/github/webhooks`, WEBHOOK_SECRET);

    const alice = store.addUser("alice");
    const repo = store.createRepo("alice/lora");
    const installation = store.install(app, alice, [repo]);
    const pushed = store.pushAs(alice, repo, [{ path: "chat/adapter_config.json", data: '{"peft_type":"LORA"}' }]);
    store.pushAs(alice, repo, [{ path: "README.md", data: "# Notes\n" }]);
    const issue = store.openIssue(repo, alice, "Variant", "Please patch it");
    store.comment(repo, issue, app.bot, `@${app.bot.login} repatch`);
    store.uninstall(installation);
    await github.webhooks.settled();

    expect(github.webhooks.deliveries.map((delivery) => [delivery.event, delivery.status])).toEqual([
      ["installation", 200],
      ["push", 200],
      ["push", 200],
      ["issue_comment", 200],
      ["installation", 200],
    ]);
    expect(await jobs()).toMatchObject([{ kind: "scan", forge: "github", repo: "alice/lora", payload: { sha: pushed.sha } }]);
    expect(logged).toContainEqual(expect.objectContaining({ msg: "GitHub App removed from repositories", removedRepos: ["alice/lora"], removedOwner: "alice", installationId: installation.id }));
    expect(await bot!.context.memory.isUninstalled({ forge: "github", repo: "alice/lora" })).toBe(true);
  });
});
