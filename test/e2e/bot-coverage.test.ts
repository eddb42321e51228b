import { writeFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadEnv } from "../../src/config/env.js";
import { startBot } from "../../src/app/start-bot.js";
import { BotWorld } from "../helpers/bot-world.js";
import { runCli } from "../helpers/cli.js";

let world: BotWorld;
beforeEach(async () => {
  world = await BotWorld.create();
});
afterEach(() => world.close());

const pushFile = (path: string, text: string) => world.commitFiles({ [path]: text }, { title: `Edit ${path}` });

describe("what the bot covers", () => {
  it("does not reopen a pull request the user closed for the same adapter files, even when the config changes", async () => {
    await world.startBot();
    await world.pushAdapter();
    await world.idle();
    const num = world.pullRequests()[0]!.num;
    await fetch(`${world.hub.url}/api/models/${world.adapterRepo}/discussions/${num}/status`, {
      method: "POST",
      headers: { Authorization: `Bearer ${world.alice.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ status: "closed" }),
    });
    await pushFile("safe-lora.yaml", "select: top-k:2\n");
    await world.idle();
    expect(world.pullRequests()).toHaveLength(1);
    const patch = (await world.bot!.context.queue.recent(20)).find((job) => job.kind === "patch")!;
    expect(patch.result).toMatchObject({ outcome: "skipped", reason: `pull request #${num} for these adapter files was closed; not reopening it` });
  });

  it("patches adapters in sub-folders, one pull request each, and never its own variant folders or trainer checkpoints", async () => {
    await world.startBot();
    await world.pushAdapter("adapters/summaries");
    await world.pushAdapter("adapters/dialogue", "expected-threshold-0.5");
    await world.pushAdapter("outputs/checkpoint-500");
    await world.idle();
    const titles = world.pullRequests().map((pr) => pr.title).sort();
    expect(titles).toEqual(["Add Safe LoRA variant (adapters/dialogue)", "Add Safe LoRA variant (adapters/summaries)"]);
    const pr = world.pullRequests().find((p) => p.title.includes("summaries"))!;
    expect(world.fileAt(`refs/pr/${pr.num}`, "adapters/summaries/safe-lora/safe-lora-report.json")).not.toBeNull();
  });

  it("groups all adapters of a repo into one pull request when configured", async () => {
    await world.startBot();
    await pushFile("safe-lora.yaml", "pullRequests: per-repo\n");
    await world.pushAdapter("a");
    await world.idle();
    await world.pushAdapter("b", "expected-threshold-0.5");
    await world.idle();
    expect(world.pullRequests()).toHaveLength(1);
    const num = world.pullRequests()[0]!.num;
    expect(world.fileAt(`refs/pr/${num}`, "a/safe-lora/safe-lora-report.json")).not.toBeNull();
    expect(world.fileAt(`refs/pr/${num}`, "b/safe-lora/safe-lora-report.json")).not.toBeNull();
    const description = world.pullRequests()[0]!.events[0]!.content!;
    expect(description).toMatch(/### `a`[\s\S]*### `b`/);
  });

  it("reports a job limit once, in words, and does not retry", async () => {
    await world.startBot();
    await pushFile("safe-lora.yaml", "limits:\n  maxModules: 2\n");
    await world.pushAdapter();
    await world.idle();
    const notices = world.repo().discussions.filter((d) => !d.isPullRequest);
    expect(notices).toHaveLength(1);
    expect(notices[0]!.events[0]!.content).toMatch(/the adapter has 8 LoRA modules, more than the limit of 2 per job \(limits\.maxModules\)/);
    // The repo lowered the cap itself: the notice says so, instead of sending its owner to the operator.
    expect(notices[0]!.events[0]!.content).toMatch(/This repo's `safe-lora\.yaml` lowers `limits\.maxModules` to 2: raise it \(this bot allows up to 1024\) or remove it/);
    const patch = (await world.bot!.context.queue.recent(20)).find((job) => job.kind === "patch")!;
    expect(patch).toMatchObject({ state: "done", attempts: 1, result: { outcome: "refused" } });
  });

  it("answers a new discussion that mentions it", async () => {
    await world.startBot();
    await world.pushAdapter();
    await world.idle();
    const response = await fetch(`${world.hub.url}/api/models/${world.adapterRepo}/discussions`, {
      method: "POST",
      headers: { Authorization: `Bearer ${world.alice.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ title: "Question", description: "@safe-lora-bot status" }),
    });
    const { num } = (await response.json()) as { num: number };
    await world.idle();
    const replies = world.repo().discussions.find((d) => d.num === num)!.events.filter((e) => e.authorId === world.botUser.id);
    expect(replies).toHaveLength(1);
    expect(replies[0]!.content).toMatch(/Pull request #1 holds `\.`/);
  });
});

describe("adapters the webhook never told the bot about", () => {
  it("safe-lora backfill <org> queues scans that a running bot turns into pull requests", async () => {
    // Pushed before the bot was installed: no webhook reaches it.
    await world.pushAdapter();
    const env = world.env();
    const backfill = await runCli(["backfill", "acme"], env);
    expect(backfill.stderr).toBe("");
    expect(backfill.stdout).toMatch(/^queued 1 scan for 1 repo/);
    const again = await runCli(["backfill", "acme"], env);
    expect(again.stdout).toMatch(/^queued 0 scans for 1 repo/);
    world.bot = await startBot({ env: loadEnv(env), server: true, worker: true, overrides: { tokenEnv: env } });
    await world.idle();
    expect(world.pullRequests()).toHaveLength(1);
  });

  it("the reconciliation scan of watched organisations finds them on its own", async () => {
    await world.pushAdapter();
    const env = world.env();
    writeFileSync(env.BOT_CONFIG!, 'select: "threshold:0.33"\nallowModelTree: true\nwatch: [acme]\nreconcileMinutes: 60\n');
    world.bot = await startBot({ env: loadEnv(env), server: true, worker: true, overrides: { tokenEnv: env } });
    await world.idle();
    expect(world.pullRequests()).toHaveLength(1);
  });
});

describe("npm run worker", () => {
  it("a worker process of its own takes the jobs that serve queues", async () => {
    const env = world.env();
    // serve without its in-process worker: only the separate process can do the work.
    world.bot = await startBot({ env: loadEnv(env), server: true, worker: false, overrides: { tokenEnv: env } });
    world.subscribe(world.bot.port!);
    const worker = await world.spawnWorker();
    await world.pushAdapter();
    await world.idle();
    expect(world.pullRequests()).toHaveLength(1);
    expect(worker.output()).toMatch(/"kind":"patch"[\s\S]*"job done"/);
  });
});

describe("SIGTERM", () => {
  it("drains: the running job finishes, then the process exits 0", async () => {
    const { process: bot, port, output } = await world.spawnBot();
    world.subscribe(port);
    let signalled = false;
    world.hub.hooks.onRequest = (method, path) => {
      // In the middle of reading the base model: ask the process to stop.
      if (!signalled && method === "GET" && path.startsWith(`/test-org/${world.caseName}-base/resolve/`)) {
        signalled = true;
        bot.kill("SIGTERM");
      }
    };
    await world.pushAdapter();
    const code = await new Promise<number | null>((resolve) => bot.once("exit", resolve));
    world.hub.hooks.onRequest = undefined;
    expect(signalled).toBe(true);
    expect(code).toBe(0);
    expect(world.pullRequests()).toHaveLength(1);
    expect(output()).toMatch(/"job done"[\s\S]*"safe-lora bot stopped"/);
  });
});
