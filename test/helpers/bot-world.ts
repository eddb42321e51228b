import { commit } from "@huggingface/hub";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createBotContext } from "../../src/app/create-bot-context.js";
import { startBot, type RunningBot } from "../../src/app/start-bot.js";
import { loadEnv } from "../../src/config/env.js";
import { LocalHub } from "../../src/local-hub/server.js";
import { folderFiles, seedReferencePair, seedRepo } from "../../src/local-hub/seed.js";
import type { User } from "../../src/local-hub/store.js";
import type { JobQueue } from "../../src/queue/job-queue.js";
import { inSubfolder } from "../../src/storage/repo-files.js";
import { GOLDEN_DIR, goldenPath } from "./golden.js";

export const SECRET = "local-webhook-secret";
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** An adapter repo before its adapter is pushed: only a model card. */
const ADAPTER_CARD = [{ path: "README.md", data: "---\nlicense: apache-2.0\n---\n# An adapter repo\n" }];

/**
 * A local Hub with an organisation `acme` (member alice), an outsider (mallory), the bot's account, the
 * golden pair as `test-org/<case>-base|chat`, and an empty adapter repo `acme/<case>-lora` — plus, once
 * `startBot` is called, the bot subscribed to acme's webhooks.
 */
export class BotWorld {
  readonly work = mkdtempSync(join(tmpdir(), "safe-lora-bot-"));
  hub!: LocalHub;
  alice!: User;
  mallory!: User;
  botUser!: User;
  bot: RunningBot | null = null;
  private readonly children: ChildProcess[] = [];
  readonly adapterRepo: string;

  constructor(readonly caseName = "llama-gqa-qv") {
    this.adapterRepo = `acme/${caseName}-lora`;
  }

  static async create(caseName?: string): Promise<BotWorld> {
    const world = new BotWorld(caseName);
    world.hub = await new LocalHub().start();
    world.alice = world.hub.store.addUser("alice");
    world.mallory = world.hub.store.addUser("mallory");
    world.botUser = world.hub.store.addUser("safe-lora-bot");
    world.hub.store.addOrg("acme", [world.alice.id]);
    const c = world.caseName;
    await seedReferencePair(world.hub, GOLDEN_DIR, c);
    await seedRepo(world.hub, world.adapterRepo, ADAPTER_CARD);
    return world;
  }

  /** The environment `safe-lora serve` gets in these tests. */
  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const botConfig = join(this.work, "bot-config.yaml");
    writeFileSync(botConfig, 'select: "threshold:0.33"\nallowModelTree: true\nreconcileMinutes: 0\n');
    return {
      HF_ENDPOINT: this.hub.url,
      HF_TOKEN: this.botUser.token,
      HF_WEBHOOK_SECRET: SECRET,
      DATA_DIR: join(this.work, "data"),
      BOT_CONFIG: botConfig,
      PORT: "0",
      LOG_LEVEL: "silent",
      SAFE_LORA_POLL_MS: "50",
      SAFE_LORA_RETRY_SECONDS: "0.2",
      SAFE_LORA_JOB_LEASE_SECONDS: "2",
      ...extra,
    };
  }

  /** Starts the bot in this process and points acme's webhook at it. */
  async startBot(extra: Record<string, string> = {}): Promise<RunningBot> {
    const env = this.env(extra);
    this.bot = await startBot({ env: loadEnv(env), server: true, worker: true, overrides: { tokenEnv: env } });
    this.subscribe(this.bot.port!);
    return this.bot;
  }

  /**
   * `safe-lora serve` in its own process, as in production; resolves once it listens, with its port.
   * `env` adds to (or overrides) `env()`'s variables, e.g. a DATA_DIR of its own or QUEUE_URL; `flags` are
   * serve's (`--web-only`).
   */
  spawnBot(env: Record<string, string> = {}, flags: string[] = []): Promise<{ process: ChildProcess; port: number; output: () => string }> {
    return this.spawnProcess(["src/cli/bin.ts", "serve", ...flags], env);
  }

  /** `npm run worker`'s entry point in its own process; resolves once it runs. `env` as for spawnBot. */
  spawnWorker(env: Record<string, string> = {}): Promise<{ process: ChildProcess; port: number; output: () => string }> {
    return this.spawnProcess(["workers/worker.ts"], env);
  }

  private spawnProcess(entry: string[], extra: Record<string, string>): Promise<{ process: ChildProcess; port: number; output: () => string }> {
    const bot = spawn(process.execPath, ["--import", "tsx", join(ROOT, entry[0]!), ...entry.slice(1)], {
      cwd: ROOT,
      env: { ...process.env, ...this.env({ LOG_LEVEL: "info", ...extra }) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.children.push(bot);
    let output = "";
    return new Promise((resolve, reject) => {
      bot.stdout!.on("data", (chunk: Buffer) => {
        output += chunk.toString("utf8");
        const line = output.split("\n").find((l) => l.includes('"safe-lora bot started"'));
        if (line) resolve({ process: bot, port: (JSON.parse(line) as { port: number }).port, output: () => output });
      });
      bot.once("exit", (code) => reject(new Error(`the bot exited (${code}) before it listened`)));
    });
  }

  subscribe(port: number): void {
    this.hub.webhooks.subscriptions.length = 0;
    this.hub.webhooks.subscribe({ url: `http://127.0.0.1:${port}/webhooks/hub`, secret: SECRET, watched: [{ type: "org", name: "acme" }] });
  }

  /**
   * One commit to main through the Hub's API (which sends the webhook), by alice unless `options.user` is given:
   * each file's text or bytes by path. Returns the commit's sha.
   */
  async commitFiles(files: Record<string, string | Uint8Array>, options: { title?: string; repo?: string; user?: User } = {}): Promise<string> {
    const result = await commit({
      hubUrl: this.hub.url,
      accessToken: (options.user ?? this.alice).token,
      repo: { type: "model", name: options.repo ?? this.adapterRepo },
      title: options.title ?? "Upload",
      useXet: false,
      operations: Object.entries(files).map(([path, content]) => ({ operation: "addOrUpdate" as const, path, content: new Blob([content]) })),
    });
    return result!.commit.oid;
  }

  /**
   * alice pushes the golden adapter (from `from`, default the case's adapter) into `folder` of the adapter repo,
   * or of `options.repo`.
   */
  async pushAdapter(folder = ".", from = "adapter", options: { repo?: string } = {}): Promise<string> {
    // The adapter's files, not PEFT's generated README: the repo keeps its own card.
    const files = (await folderFiles(goldenPath(this.caseName, from))).filter((file) => file.path !== "README.md");
    const content = Object.fromEntries(files.map((file) => [inSubfolder(folder, file.path), readFileSync((file as { diskPath: string }).diskPath)]));
    return this.commitFiles(content, { title: "Upload adapter", ...(options.repo ? { repo: options.repo } : {}) });
  }

  /**
   * `count` more empty adapter repos like the default one, `acme/<case>-lora-1` … `-<count>`, each with only a model
   * card (so that nothing is patched until an adapter is pushed). Returns their names.
   */
  async addAdapterRepos(count: number): Promise<string[]> {
    const names = Array.from({ length: count }, (_, i) => `${this.adapterRepo}-${i + 1}`);
    for (const name of names) await seedRepo(this.hub, name, ADAPTER_CARD);
    return names;
  }

  /** Comments on a discussion as `user`, through the Hub's API (which sends the webhook). */
  async comment(user: User, num: number, text: string): Promise<string> {
    const response = await fetch(`${this.hub.url}/api/models/${this.adapterRepo}/discussions/${num}/comment`, {
      method: "POST",
      headers: { Authorization: `Bearer ${user.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ comment: text }),
    });
    return ((await response.json()) as { newMessage: { id: string } }).newMessage.id;
  }

  /** Waits until webhooks are delivered and the queue has nothing queued or running, twice in a row. */
  async idle(timeoutMs = 30_000): Promise<void> {
    await this.untilQuiet(this.bot!.context.queue, { rounds: 2, everyMs: 100, timeoutMs });
  }

  /**
   * Waits until the queue has nothing left to do, three looks in a row, as another process of the deployment sees
   * it: opened from `env` as `serve` opens it (DATA_DIR's file, or QUEUE_URL's Redis) and read through JobQueue only.
   * Returns it open, for the caller to read and close.
   */
  async queueIdle(env: NodeJS.ProcessEnv = this.env(), timeoutMs = 60_000): Promise<JobQueue> {
    const { queue } = await createBotContext(loadEnv(env), { tokenEnv: env });
    try {
      await this.untilQuiet(queue, { rounds: 3, everyMs: 200, timeoutMs });
    } catch (error) {
      await queue.close();
      throw error;
    }
    return queue;
  }

  private async untilQuiet(queue: JobQueue, { rounds, everyMs, timeoutMs }: { rounds: number; everyMs: number; timeoutMs: number }): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let quiet = 0;
    while (quiet < rounds) {
      if (Date.now() > deadline) throw new Error(`the bot did not become idle in time: jobs still pending: ${JSON.stringify(await queue.counts())}`);
      await this.hub.webhooks.settled();
      const counts = await queue.counts();
      quiet = counts.queued === 0 && counts.running === 0 ? quiet + 1 : 0;
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  }

  /** The adapter repo in the Hub's store, or `name`. */
  repo(name = this.adapterRepo) {
    return this.hub.store.repos.get(name)!;
  }

  pullRequests(repo = this.adapterRepo) {
    return this.repo(repo).discussions.filter((d) => d.isPullRequest);
  }

  /** Commits on a pull request's ref (of the adapter repo, or `repoName`), newest first. */
  prCommits(num: number, repoName = this.adapterRepo): string[] {
    const repo = this.repo(repoName);
    const commits: string[] = [];
    let id: string | null | undefined = repo.refs.get(`refs/pr/${num}`);
    const mainIds = new Set<string>();
    for (let m: string | null | undefined = repo.refs.get("refs/heads/main"); m; m = repo.commits.get(m)?.parent) mainIds.add(m);
    while (id && !mainIds.has(id)) {
      commits.push(id);
      id = repo.commits.get(id)?.parent;
    }
    return commits;
  }

  fileAt(ref: string, path: string): Buffer | null {
    const repo = this.repo();
    const file = repo.commits.get(repo.refs.get(ref)!)?.files.get(path);
    if (!file) return null;
    return file.content.kind === "memory" ? file.content.data : readFileSync(file.content.path);
  }

  async close(): Promise<void> {
    for (const child of this.children) child.kill("SIGKILL");
    this.hub.hooks.afterCommit = undefined;
    this.hub.hooks.onRequest = undefined;
    await this.bot?.stop();
    await this.hub.close();
    rmSync(this.work, { recursive: true, force: true });
  }
}
