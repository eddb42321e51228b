import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { folderFiles, seedRepo } from "../../src/local-hub/seed.js";
import { FullFinetuneReport } from "../../src/report/full-finetune-schema.js";
import { BotWorld } from "../helpers/bot-world.js";
import { runCli } from "../helpers/cli.js";
import { FINETUNE_CARD, seedFinetuneFamily } from "../helpers/finetune-family.js";
import type { TinyFullFinetune } from "../helpers/tiny-full-finetune.js";
import { until } from "../helpers/until.js";

const FINETUNE_REPO = "acme/tiny-finetune";

/** The family on the Hub and the fine-tune's repo, with its card only. */
async function seedFamily(world: BotWorld): Promise<TinyFullFinetune> {
  const models = await seedFinetuneFamily(world);
  await seedRepo(world.hub, FINETUNE_REPO, [{ path: "README.md", data: FINETUNE_CARD }]);
  return models;
}

/** alice pushes the fine-tune's weights and config.json to its repo, as they are on disk: the webhook starts a scan. */
function pushFinetune(world: BotWorld, models: TinyFullFinetune) {
  const files = Object.fromEntries(["model.safetensors", "config.json"].map((name) => [name, readFileSync(join(models.finetuned, name))]));
  return world.commitFiles(files, { repo: FINETUNE_REPO, title: "Upload fine-tune" });
}

const fileAt = (world: BotWorld, ref: string, path: string) => {
  const repo = world.repo(FINETUNE_REPO);
  const file = repo.commits.get(repo.refs.get(ref)!)?.files.get(path);
  if (!file) return null;
  return file.content.kind === "memory" ? file.content.data : readFileSync(file.content.path);
};

describe("the bot on a repo holding a full fine-tune", () => {
  let world: BotWorld;
  let models: TinyFullFinetune;
  beforeAll(async () => {
    world = await BotWorld.create();
    models = await seedFamily(world);
    await world.startBot();
  });
  afterAll(() => world.close());

  let num: number;
  it("opens one pull request whose safe-lora/ is the CLI's variant of the same models: the same shards, byte for byte", async () => {
    await pushFinetune(world, models);
    await world.idle(60_000);
    const prs = world.repo(FINETUNE_REPO).discussions.filter((d) => d.isPullRequest);
    expect(prs).toHaveLength(1);
    num = prs[0]!.num;
    const ref = `refs/pr/${num}`;
    const report = FullFinetuneReport.parse(JSON.parse(fileAt(world, ref, "safe-lora/safe-lora-report.json")!.toString("utf8")));
    expect(report).toMatchObject({ kind: "full-finetune", moduleCount: 14, selection: { mode: "threshold", value: 0.33 } });
    expect(report.inputs.finetuned.location).toBe(FINETUNE_REPO);
    expect(report.inputs.aligned).toMatchObject({ location: "test-org/tiny-chat", resolvedBy: "finetune-card" });
    expect(report.inputs.base).toMatchObject({ location: "test-org/tiny-base", resolvedBy: "model-tree" });
    expect(report.record?.finetuned).toEqual(expect.objectContaining({ "config.json": expect.any(String), "model.safetensors": expect.any(String) }));
    // The same patch made by hand from the same three folders: the shards and their index are the same bytes.
    const out = join(world.work, "cli-variant");
    const cli = await runCli(["patch", "--finetune", models.finetuned, "--base", models.base, "--aligned", models.aligned, "--select", "threshold:0.33", "--out", out]);
    expect(cli.code).toBe(0);
    const shards = readdirSync(out).filter((name) => name.startsWith("model"));
    expect(shards).toEqual(["model-00001-of-00001.safetensors", "model.safetensors.index.json"]);
    for (const name of [...shards, "config.json"]) expect(fileAt(world, ref, `safe-lora/${name}`), name).toEqual(readFileSync(join(out, name)));
    const cliReport = FullFinetuneReport.parse(JSON.parse(readFileSync(join(out, "safe-lora-report.json"), "utf8")));
    expect(report.projectedCount).toBe(cliReport.projectedCount);
    expect(report.projectedCount).toBeGreaterThan(0);
  });

  it("writes a card the Hub reads as a fine-tune of the aligned model, and describes the pull request", async () => {
    const card = fileAt(world, `refs/pr/${num}`, "safe-lora/README.md")!.toString("utf8");
    expect(card).toMatch(/^---\nbase_model: test-org\/tiny-chat\nbase_model_relation: finetune\nlibrary_name: transformers\nlicense: apache-2.0\n/);
    expect(card).toContain(`safe-lora patch --hub-url ${world.hub.url} --finetune ${FINETUNE_REPO}@`);
    const description = world.repo(FINETUNE_REPO).discussions.find((d) => d.num === num)!.events[0]!.content!;
    expect(description).toMatch(/<!-- safe-lora-bot:pull-request \{"folder":"."\} -->/);
    expect(description).toMatch(/\| Modules projected \| \d+ \/ 14 \|/);
    expect(description).toContain("**What this pull request changes** (5 files; nothing else in the repo, and no existing file):");
    expect(description).toMatch(/^- adds `safe-lora\/model-00001-of-00001\.safetensors`$/m);
  });

  /** alice's comment on the fine-tune repo's discussion `num`; resolves with the bot's answer to it, once final. */
  async function command(text: string, final: RegExp): Promise<string> {
    const before = world.repo(FINETUNE_REPO).discussions.find((d) => d.num === num)!.events.length;
    const response = await fetch(`${world.hub.url}/api/models/${FINETUNE_REPO}/discussions/${num}/comment`, {
      method: "POST",
      headers: { Authorization: `Bearer ${world.alice.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ comment: text }),
    });
    expect(response.ok).toBe(true);
    await world.idle(60_000);
    const answers = world.repo(FINETUNE_REPO).discussions.find((d) => d.num === num)!.events.slice(before + 1).filter((event) => event.type === "comment");
    const answer = answers.map((event) => event.content ?? "").find((content) => final.test(content));
    expect(answer, JSON.stringify(answers.map((event) => event.content))).toBeDefined();
    return answer!;
  }

  it("takes comment commands on its pull request: repatch with a selection commits onto it, status says what it holds", async () => {
    const done = await command("@safe-lora-bot repatch top-k:2", /^Done: committed `[0-9a-f]{12}` — the fine-tune in `\.` patched, 2 of 14 modules projected\.$/);
    expect(done).toBeDefined();
    const report = FullFinetuneReport.parse(JSON.parse(fileAt(world, `refs/pr/${num}`, "safe-lora/safe-lora-report.json")!.toString("utf8")));
    expect(report).toMatchObject({ projectedCount: 2, selection: { mode: "top-k", value: 2 } });
    expect(world.repo(FINETUNE_REPO).discussions.filter((d) => d.isPullRequest)).toHaveLength(1);
    const status = await command("@safe-lora-bot status", /^Pull request #\d+ holds/);
    expect(status).toContain("selection `top-k:2`, 2 of 14 modules projected");
    const operator = await command("@safe-lora-bot repatch operator=subspace:4", /paper's operator only/);
    expect(operator).toContain("holds a full fine-tune");
  });

  it("a README-only commit makes no new job, and merging the variant is not taken for a new fine-tune", async () => {
    const jobsBefore = (await world.bot!.context.queue.recent(100)).filter((job) => job.kind === "finetune").length;
    await world.commitFiles({ "README.md": `${FINETUNE_CARD}\nMore words.\n` }, { repo: FINETUNE_REPO, title: "Edit card" });
    await world.idle();
    const merge = await fetch(`${world.hub.url}/api/models/${FINETUNE_REPO}/discussions/${num}/merge`, { method: "POST", headers: { Authorization: `Bearer ${world.alice.token}` } });
    expect(merge.status).toBe(200);
    await world.idle();
    const finetuneJobs = (await world.bot!.context.queue.recent(100)).filter((job) => job.kind === "finetune");
    expect(finetuneJobs).toHaveLength(jobsBefore);
    expect(world.repo(FINETUNE_REPO).discussions.filter((d) => d.isPullRequest)).toHaveLength(1);
  });
});

describe("the bot on a repo holding a family's own release", () => {
  let world: BotWorld;
  beforeAll(async () => {
    world = await BotWorld.create();
    await seedFamily(world);
    await world.startBot();
  });
  afterAll(() => world.close());

  it("leaves an aligned model whose card names its base alone, without a notice: it is no fine-tune to repair", async () => {
    const models = join(world.work, "models");
    await seedRepo(world.hub, "acme/tiny-chat-release", [{ path: "README.md", data: "---\nbase_model: test-org/tiny-base\n---\n# Our chat release\n" }]);
    await world.commitFiles(Object.fromEntries(["model.safetensors", "config.json"].map((name) => [name, readFileSync(join(models, "aligned", name))])), { repo: "acme/tiny-chat-release" });
    await world.idle(60_000);
    const job = (await world.bot!.context.queue.recent(100)).find((j) => j.kind === "finetune" && j.repo === "acme/tiny-chat-release");
    expect(job).toMatchObject({ state: "done", result: { outcome: "skipped", reason: expect.stringMatching(/^no base\/aligned pair for this model .*name one with pair: in safe-lora\.yaml/) } });
    expect(world.repo("acme/tiny-chat-release").discussions).toHaveLength(0);
  });
});

describe("a fine-tune whose card names another organisation's private model", () => {
  let world: BotWorld;
  let models: TinyFullFinetune;
  beforeAll(async () => {
    world = await BotWorld.create();
    models = await seedFinetuneFamily(world);
    // otherorg's private copy of the family; the bot's account is a member, so its token could read it.
    world.hub.store.addOrg("otherorg", [world.botUser.id]);
    await seedRepo(world.hub, "otherorg/private-base", await folderFiles(models.base), { private: true });
    await seedRepo(world.hub, "otherorg/private-chat", [...(await folderFiles(models.aligned)), { path: "README.md", data: "---\nbase_model: otherorg/private-base\n---\n" }], { private: true });
    await seedRepo(world.hub, FINETUNE_REPO, [{ path: "README.md", data: FINETUNE_CARD.replace("test-org/tiny-chat", "otherorg/private-chat") }]);
    await world.startBot();
  });
  afterAll(() => world.close());

  it("is refused with a notice, and not one byte of the private models is read or published", async () => {
    const reads: string[] = [];
    world.hub.hooks.onRequest = (method, path) => {
      if (path.includes("otherorg/private-") && (path.includes("/resolve/") || path.includes("/tree/"))) reads.push(`${method} ${path}`);
    };
    await pushFinetune(world, models);
    await world.idle(60_000);
    const discussions = world.repo(FINETUNE_REPO).discussions;
    expect(discussions.filter((d) => d.isPullRequest)).toHaveLength(0);
    const notice = discussions.find((d) => !d.isPullRequest)!.events[0]!.content!;
    expect(notice).toMatch(/otherorg\/private-chat is not a public model \(or does not exist\)/);
    expect(reads).toEqual([]);
  });
});

describe("the bot's CPU cap for full fine-tunes (BOT_CONFIG fullFinetunes.maxCpuModuleElements: 1000)", () => {
  let world: BotWorld;
  let models: TinyFullFinetune;
  beforeAll(async () => {
    world = await BotWorld.create();
    models = await seedFamily(world);
    const config = join(world.work, "bot-config-cap.yaml");
    writeFileSync(config, 'select: "threshold:0.33"\nallowModelTree: true\nreconcileMinutes: 0\nfullFinetunes:\n  maxCpuModuleElements: 1000\n');
    await world.startBot({ BOT_CONFIG: config });
  });
  afterAll(() => world.close());

  it("queues a fine-tune whose config.json declares larger modules for a GPU worker: this CPU worker leaves it waiting", async () => {
    await pushFinetune(world, models);
    const queue = world.bot!.context.queue;
    const job = await until(async () => (await queue.recent(100)).find((j) => j.kind === "finetune"), (found) => found !== undefined, 30_000);
    expect(job).toMatchObject({ needs: "gpu", state: "queued" });
    // Many poll rounds later (SAFE_LORA_POLL_MS=50) it has still not been started by the CPU runner.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await queue.get(job!.id)).toMatchObject({ state: "queued", attempts: 0 });
    expect(world.repo(FINETUNE_REPO).discussions).toHaveLength(0);
    // The status page says why it waits, and what the scan found.
    const page = await (await fetch(`http://127.0.0.1:${world.bot!.port}/`)).text();
    expect(page).toMatch(/<td>finetune<\/td><td><span class="badge queued">queued<\/span><\/td><td>acme\/tiny-finetune<\/td><td>\.<\/td><td><\/td><td class="detail">waits for a GPU worker<\/td>/);
    expect(page).toContain("0 adapter folders, 1 full fine-tune, 1 patch job queued");
  });

  it("refuses on the CPU one whose config.json does not say, with a notice that names the way on", async () => {
    await seedRepo(world.hub, "acme/tiny-finetune-2", [{ path: "README.md", data: FINETUNE_CARD }]);
    const config = JSON.parse(readFileSync(join(models.finetuned, "config.json"), "utf8")) as Record<string, unknown>;
    delete config.hidden_size;
    delete config.intermediate_size;
    await world.commitFiles({ "model.safetensors": readFileSync(join(models.finetuned, "model.safetensors")), "config.json": JSON.stringify(config) }, { repo: "acme/tiny-finetune-2" });
    const notice = await until(() => world.repo("acme/tiny-finetune-2").discussions.find((d) => !d.isPullRequest), (found) => found !== undefined, 30_000);
    expect(notice!.title).toBe("Safe LoRA could not patch this fine-tune");
    const text = notice!.events[0]!.content!;
    expect(text).toMatch(/10 of 14 modules are too large for a CPU run/);
    expect(text).toMatch(/runs on a GPU worker only/);
    expect(text).toContain("`fullFinetunes.maxCpuModuleElements`");
    expect(world.repo("acme/tiny-finetune-2").discussions.filter((d) => d.isPullRequest)).toHaveLength(0);
  });
});
