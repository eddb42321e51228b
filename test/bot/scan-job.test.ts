import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCommand } from "../../src/bot/command-job.js";
import { runScan } from "../../src/bot/scan-job.js";
import { botTest, LORA_CONFIG, MEMBER, REPO, type BotTest } from "./bot-test.js";

let t: BotTest;
beforeEach(async () => {
  t = await botTest();
});
afterEach(() => t.close());

const scan = (sha: string | null = null) => runScan(t.job, { repo: REPO, sha, reason: "push" });
const commit = (files: Record<string, string | null>) => t.forge.commitFiles({ repo: REPO, files, author: MEMBER });
const patchJobs = async () => (await t.jobs()).filter((job) => job.kind === "patch");

describe("the scan job", () => {
  it("queues one patch job per LoRA adapter folder, at the scanned commit, on the job's forge", async () => {
    const sha = commit({ "adapter_config.json": LORA_CONFIG, "adapter_model.safetensors": "w", "adapters/b/adapter_config.json": LORA_CONFIG });
    expect(await scan(sha)).toEqual({ sha, adapters: [".", "adapters/b"], queued: [".", "adapters/b"] });
    const jobs = await patchJobs();
    expect(jobs.map((job) => [job.forge, job.repo, job.payload])).toEqual([
      ["hub", REPO, { repo: REPO, folder: ".", sha, selection: null, command: null }],
      ["hub", REPO, { repo: REPO, folder: "adapters/b", sha, selection: null, command: null }],
    ]);
  });

  it("scans the current head when the job names none", async () => {
    commit({ "a/adapter_config.json": LORA_CONFIG });
    const head = commit({ "b/adapter_config.json": LORA_CONFIG });
    expect(await scan(null)).toMatchObject({ sha: head, adapters: ["a", "b"] });
  });

  it("queues nothing again for the same adapter files, whatever else the commit changed", async () => {
    commit({ "adapter_config.json": LORA_CONFIG });
    await scan();
    commit({ "README.md": "# A new card\n" });
    expect(await scan()).toMatchObject({ queued: [] });
    expect(await patchJobs()).toHaveLength(1);
  });

  it("queues again when the adapter or the repo's configuration changes", async () => {
    commit({ "adapter_config.json": LORA_CONFIG });
    await scan();
    commit({ "adapter_config.json": LORA_CONFIG.replace('"r":4', '"r":8') });
    expect(await scan()).toMatchObject({ queued: ["."] });
    commit({ "safe-lora.yaml": "select: top-k:2\n" });
    expect(await scan()).toMatchObject({ queued: ["."] });
    expect(await patchJobs()).toHaveLength(3);
  });

  it("skips the bot's variant folders, trainer checkpoints and adapters that are not LoRA", async () => {
    commit({
      "adapter_config.json": LORA_CONFIG,
      "safe-lora/adapter_config.json": LORA_CONFIG,
      "checkpoint-500/adapter_config.json": LORA_CONFIG,
      "prefix/adapter_config.json": JSON.stringify({ peft_type: "PREFIX_TUNING" }),
    });
    expect(await scan()).toMatchObject({ adapters: ["."] });
  });

  it("follows safe-lora.yaml: checkpoints when asked, include and exclude globs", async () => {
    commit({
      "safe-lora.yaml": 'checkpoints: true\nexclude: ["drafts/**"]\n',
      "checkpoint-500/adapter_config.json": LORA_CONFIG,
      "drafts/x/adapter_config.json": LORA_CONFIG,
    });
    expect(await scan()).toMatchObject({ adapters: ["checkpoint-500"] });
  });

  it("does nothing in a repo that turned it off", async () => {
    commit({ "adapter_config.json": LORA_CONFIG, "safe-lora.yaml": "enabled: false\n" });
    expect(await scan()).toEqual({ skipped: "disabled by safe-lora.yaml" });
    expect(await t.jobs()).toEqual([]);
  });

  it("reports an invalid safe-lora.yaml once, in a discussion of its own, and queues nothing", async () => {
    commit({ "adapter_config.json": LORA_CONFIG, "safe-lora.yaml": "select: treshold:0.3\n" });
    expect(await scan()).toMatchObject({ skipped: "invalid safe-lora.yaml", key: "select" });
    expect(await scan()).toMatchObject({ skipped: "invalid safe-lora.yaml" });
    const notices = t.forge.repoOf(REPO).discussions;
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ title: "safe-lora.yaml is invalid", author: t.forge.bot.name, isPullRequest: false });
    expect(notices[0]!.comments[0]!.text).toContain("`select` (safe-lora.yaml, line 1)");
    expect(await t.jobs()).toEqual([]);
  });

  it("skips a folder people told it to stop covering", async () => {
    commit({ "a/adapter_config.json": LORA_CONFIG, "b/adapter_config.json": LORA_CONFIG });
    const num = t.forge.openDiscussionAs({ repo: REPO, author: MEMBER, title: "stop", text: "…" });
    const commentId = t.forge.commentAs({ repo: REPO, discussion: num, author: MEMBER, text: "@safe-lora-bot stop folder=a" });
    await runCommand(t.job, { repo: REPO, discussion: num, isPullRequest: false, commentId, content: "@safe-lora-bot stop folder=a" });
    expect(await scan()).toMatchObject({ adapters: ["a", "b"], queued: ["b"] });
  });

  it("does nothing for a repo the operator excludes", async () => {
    const other = await botTest({ botConfig: `excludeRepos: [${REPO}]\n` });
    try {
      expect(await runScan(other.job, { repo: REPO, sha: null, reason: "reconcile" })).toEqual({ skipped: "excluded by BOT_CONFIG" });
      expect(other.forge.calls).toEqual([]);
    } finally {
      await other.close();
    }
  });
});
