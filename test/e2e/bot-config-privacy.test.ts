import { hostname } from "node:os";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { folderFiles, seedRepo } from "../../src/local-hub/seed.js";
import { BotWorld } from "../helpers/bot-world.js";
import { goldenPath } from "../helpers/golden.js";

let world: BotWorld;
beforeAll(async () => {
  world = await BotWorld.create();
  await world.startBot({ STATUS_TOKEN: "let-me-see" });
});
afterAll(() => world.close());

const pushConfig = (text: string) => world.commitFiles({ "safe-lora.yaml": text }, { title: "Configure Safe LoRA" });

describe("an invalid safe-lora.yaml", () => {
  it("gets one comment naming the key, once per version of the file, and nothing else happens", async () => {
    await pushConfig("select: threshold:0.3\nlimits:\n  maxModules: many\n");
    await world.pushAdapter();
    await world.idle();
    // A second push with the same file version: no second comment.
    await world.pushAdapter(".", "expected-threshold-0.5");
    await world.idle();
    const notices = world.repo().discussions.filter((d) => !d.isPullRequest && d.authorId === world.botUser.id);
    expect(notices).toHaveLength(1);
    expect(notices[0]!.title).toBe("safe-lora.yaml is invalid");
    expect(notices[0]!.events[0]!.content).toMatch(/`limits\.maxModules` \(safe-lora\.yaml, line 3\): Invalid input: expected number, received string/);
    expect(world.pullRequests()).toHaveLength(0);
  });

  it("once fixed, the bot patches again", async () => {
    await pushConfig("select: top-k:3\n");
    await world.idle();
    expect(world.pullRequests()).toHaveLength(1);
  });
});

describe("the status page and metrics", () => {
  beforeAll(async () => {
    // A private repo of acme, with an adapter: the bot sees it (its jobs run), the public must not.
    await seedRepo(world.hub, "acme/secret-project-lora", [], { private: true });
    world.hub.store.orgByName("acme")!.memberIds.add(world.botUser.id);
    const adapter = await folderFiles(goldenPath("llama-gqa-qv", "adapter"));
    await world.commitFiles(Object.fromEntries(adapter.map((f) => [f.path, readFileSync((f as { diskPath: string }).diskPath)])), { repo: "acme/secret-project-lora" });
    await world.idle();
  });

  it("name no private repo without STATUS_TOKEN", async () => {
    const base = `http://127.0.0.1:${world.bot!.port}`;
    const page = await (await fetch(`${base}/`)).text();
    expect(page).toContain(world.adapterRepo);
    expect(page).not.toContain("secret-project");
    expect(page).toContain("a private repo");
    // The worker in this process is counted, by what it runs; its host name is not shown.
    expect(page).toContain('<p class="workers">1 worker: cpu × 1.</p>');
    expect(page).not.toContain(hostname());
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/safe_lora_jobs\{state="done"\} \d+/);
    expect(metrics).toMatch(/safe_lora_webhooks_total\{outcome="accepted"\} \d+/);
    expect(metrics).not.toContain("secret-project");
  });

  it("take requests from the status page's form for repos the bot can see", async () => {
    const base = `http://127.0.0.1:${world.bot!.port}`;
    const token = /name="form_token" value="([0-9a-f]+)"/.exec(await (await fetch(`${base}/`)).text())![1]!;
    const form = (repo: string, query = "", fields: Record<string, string> = { form_token: token }, headers: Record<string, string> = {}) =>
      fetch(`${base}/request${query}`, {
        method: "POST",
        redirect: "manual",
        headers: { "Content-Type": "application/x-www-form-urlencoded", ...headers },
        body: new URLSearchParams({ repo, ...fields }),
      });
    expect((await form(world.adapterRepo)).status).toBe(303);
    // Issue 7 item 4: consent. An owner who never installed the webhook gets no pull requests from a stranger's
    // request; the operator (STATUS_TOKEN) may still ask. Posts from other sites or without the page's token are refused.
    await seedRepo(world.hub, "stranger/public-lora", (await folderFiles(goldenPath("llama-gqa-qv", "adapter"))).filter((f) => f.path !== "README.md"));
    const refused = await form("stranger/public-lora");
    expect(refused.status).toBe(403);
    // The same words for every uncovered owner: the answer does not tell who uses the bot.
    const refusal = await refused.text();
    expect(refusal).toMatch(/only for repos of organisations and users that installed its webhook \(or that its operator watches\); it will not act on this one/);
    expect(refusal).not.toContain("stranger");
    expect((await form("stranger/public-lora", "?token=let-me-see")).status).toBe(303);
    expect((await form(world.adapterRepo, "", { form_token: "0".repeat(32) })).status).toBe(403);
    expect((await form(world.adapterRepo, "", {})).status).toBe(403);
    expect((await form(world.adapterRepo, "", { form_token: token }, { Origin: "https://evil.example" })).status).toBe(403);
    expect((await form(world.adapterRepo, "", { form_token: token }, { "Sec-Fetch-Site": "cross-site" })).status).toBe(403);
    expect((await form("not a repo")).status).toBe(400);
    // A private repo is not even confirmed to exist without STATUS_TOKEN.
    expect((await form("acme/secret-project-lora")).status).toBe(404);
    expect((await form("acme/secret-project-lora", "?token=let-me-see")).status).toBe(303);
    await world.idle();
  });

  it("show it with STATUS_TOKEN", async () => {
    const page = await (await fetch(`http://127.0.0.1:${world.bot!.port}/?token=let-me-see`)).text();
    expect(page).toContain("acme/secret-project-lora");
    // The operator sees which worker it is.
    expect(page).toContain(`<code>${world.bot!.worker!.id}</code>: cpu, `);
    // The operator's form keeps the token, so that it may ask for any repo from the browser too.
    expect(page).toContain('action="/request?token=let-me-see"');
    expect(await (await fetch(`http://127.0.0.1:${world.bot!.port}/`)).text()).toContain('action="/request"');
  });
});

describe("a safe-lora.yaml that expands without bound (issue 7 item 8)", () => {
  it("becomes the config notice, not a job retried as a bug", async () => {
    const rows = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 12; i++) rows.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(",")}]`);
    await pushConfig(`${rows.join("\n")}\n`);
    await world.idle();
    const jobs = await world.bot!.context.queue.recent(5);
    expect(jobs.every((job) => job.state === "done" && job.attempts === 1)).toBe(true);
    const notices = world.repo().discussions.filter((d) => d.authorId === world.botUser.id).flatMap((d) => d.events.map((e) => e.content ?? ""));
    expect(notices.filter((text) => /I could not read this repo's `safe-lora\.yaml`: safe-lora\.yaml: cannot be read: .*alias/i.test(text))).toHaveLength(1);
  });
});
