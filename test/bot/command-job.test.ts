import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCommand } from "../../src/bot/command-job.js";
import { pullRequestMarker } from "../../src/forge/forge.js";
import { eightModules } from "../report/report-fixture.js";
import { botTest, LORA_CONFIG, MEMBER, OUTSIDER, REPO, type BotTest } from "./bot-test.js";

let t: BotTest;
beforeEach(async () => {
  t = await botTest({ files: { "adapter_config.json": LORA_CONFIG } });
});
afterEach(() => t.close());

/** An answer's text as people read it: the hidden marker naming the comment it answers left out. */
const withoutAckMarker = (text: string) => text.replace(/\n\n<!-- safe-lora-bot:ack \{.*?\} -->$/, "");

/** `author` comments `text` on discussion `num` (a new plain discussion when absent); the command job runs on it. */
async function command(text: string, options: { author?: string; num?: number } = {}) {
  const num = options.num ?? t.forge.openDiscussionAs({ repo: REPO, author: MEMBER, title: "A question", text: "…" });
  const commentId = t.forge.commentAs({ repo: REPO, discussion: num, author: options.author ?? MEMBER, text });
  const payload = { repo: REPO, discussion: num, isPullRequest: false, commentId, content: text };
  return { num, commentId, payload, result: await runCommand(t.job, payload), replies: () => t.forge.botComments(REPO, num).map((c) => withoutAckMarker(c.text)) };
}

/** A bot pull request for `folder`, its head holding a committed report. */
async function botPullRequest(folder = ".", report: object = eightModules()) {
  const variant = folder === "." ? "safe-lora" : `${folder}/safe-lora`;
  return t.forge.openPullRequest({
    repo: REPO,
    baseSha: (await t.forge.head(REPO)).sha,
    title: "Add Safe LoRA variant",
    description: `${pullRequestMarker(folder)}\nA variant.`,
    files: [{ path: `${variant}/safe-lora-report.json`, content: new Blob([JSON.stringify(report)]) }],
  });
}

describe("the command job", () => {
  it("answers help", async () => {
    const { result, replies } = await command("@safe-lora-bot help");
    expect(result).toEqual({ answered: "help" });
    expect(replies()).toEqual([expect.stringMatching(/^Commands \(in a comment on the bot's pull request[\s\S]*`@safe-lora-bot repatch`/)]);
  });

  it("explains what it did not understand, with the help", async () => {
    const { result, replies } = await command("@safe-lora-bot repatch tau=7");
    expect(result).toMatchObject({ invalid: expect.stringContaining("tau=7") });
    expect(replies()[0]).toMatch(/^I did not understand `@\u2060safe-lora-bot repatch tau=7`: [\s\S]*Commands/);
  });

  it("refuses someone who is neither a member of the owner nor allowed, and queues nothing", async () => {
    const { result, replies } = await command("@safe-lora-bot repatch", { author: OUTSIDER });
    expect(result).toEqual({ refused: OUTSIDER });
    expect(replies()).toEqual([expect.stringMatching(/^Thanks for asking, @mallory\. Only members of `acme` \(and people its Safe LoRA configuration allows\)/)]);
    expect(await t.jobs()).toEqual([]);
  });

  it("takes commands from the users safe-lora.yaml allows", async () => {
    t.forge.commitFiles({ repo: REPO, files: { "safe-lora.yaml": `allowUsers: [${OUTSIDER}]\n` } });
    expect((await command("@safe-lora-bot help", { author: OUTSIDER })).result).toEqual({ answered: "help" });
  });

  it("queues a re-patch with the selection asked, acknowledged by the comment the patch job will edit", async () => {
    const { result, replies, num, commentId } = await command("@safe-lora-bot repatch top-k=3");
    expect(result).toEqual({ queued: "repatch", folder: "." });
    expect(replies()).toEqual(["On it: `repatch top-k:3` for `.`. I will edit this comment with the result."]);
    const [job] = await t.jobs();
    const ackId = t.forge.botComments(REPO, num)[0]!.id;
    expect(job).toMatchObject({ kind: "patch", forge: "hub", repo: REPO, payload: { repo: REPO, folder: ".", sha: null, selection: { mode: "top-k", value: 3 }, command: { discussion: num, commentId, ackId } } });
  });

  it("answers a comment once, even when its job runs again after a crash", async () => {
    const first = await command("@safe-lora-bot repatch");
    await runCommand(t.job, first.payload);
    expect(first.replies()).toHaveLength(1);
    expect(t.forge.botComments(REPO, first.num)[0]!.edits).toBeGreaterThanOrEqual(1);
    expect(await t.jobs()).toHaveLength(1);
  });

  it("acts on the folder of the bot's pull request it is written on", async () => {
    t.forge.commitFiles({ repo: REPO, files: { "b/adapter_config.json": LORA_CONFIG } });
    const { num } = await botPullRequest("b");
    const { result } = await command("@safe-lora-bot repatch", { num });
    expect(result).toEqual({ queued: "repatch", folder: "b" });
  });

  it("asks which folder in a repo with several adapters, and takes the one named", async () => {
    t.forge.commitFiles({ repo: REPO, files: { "b/adapter_config.json": LORA_CONFIG } });
    const unsure = await command("@safe-lora-bot repatch");
    expect(unsure.result).toEqual({ answered: "which folder?" });
    expect(unsure.replies()).toEqual(["This repo has several adapters (`.`, `b`): add `folder=<one of them>` to the command."]);
    expect((await command("@safe-lora-bot repatch folder=b")).result).toEqual({ queued: "repatch", folder: "b" });
  });

  it("says so when the repo has no adapter to act on", async () => {
    t.forge.commitFiles({ repo: REPO, files: { "adapter_config.json": null } });
    const { result, replies } = await command("@safe-lora-bot status");
    expect(result).toEqual({ answered: "which folder?" });
    expect(replies()).toEqual(["I found no LoRA adapter or full fine-tune in this repo to act on."]);
  });

  it("answers status from the report at the pull request's head", async () => {
    // The acknowledgement ("On it") is edited into the answer.
    const none = await command("@safe-lora-bot status");
    expect(none.replies()).toEqual(["No open Safe LoRA pull request for `.`."]);
    const { num, commit } = await botPullRequest();
    const { replies } = await command("@safe-lora-bot status", { num });
    expect(replies()).toHaveLength(1);
    expect(replies()[0]).toBe(
      [
        `Pull request #${num} holds \`.\` at \`${commit.slice(0, 12)}\`:`,
        "- selection `threshold:0.33`, 4 of 8 modules projected",
        "- aligned `test-org/llama-chat@cccccccccccc`, base `test-org/llama-base@bbbbbbbbbbbb`",
        "- made by safe-lora `0.1.0` on `2026-01-01T00:00:00.000Z`",
      ].join("\n"),
    );
  });

  it("names a subspace operator in the status, where one made the variant", async () => {
    const report = eightModules();
    const { num } = await botPullRequest(".", { ...report, operator: { ...report.operator, kind: "subspace", setting: "subspace:8" } });
    const { replies } = await command("@safe-lora-bot status", { num });
    expect(replies()[0]).toContain("- selection `threshold:0.33`, operator `subspace:8`, 4 of 8 modules projected");
  });

  it("stops: closes the folder's open pull request and remembers it; start undoes it and scans the head", async () => {
    const { num } = await botPullRequest();
    const stop = await command("@safe-lora-bot stop", { num });
    expect(stop.result).toEqual({ answered: "stop", folder: "." });
    expect(t.forge.discussionOf(REPO, num).status).toBe("closed");
    expect(stop.replies()).toEqual([
      "Stopped: I will not patch `.` again until someone comments `@safe-lora-bot start`.",
      "Closed as @alice asked. Comment `@safe-lora-bot start` to have it covered again.",
    ]);
    expect((await command("@safe-lora-bot status")).replies()[0]).toBe("No open Safe LoRA pull request for `.`. I was asked to stop covering it.");

    const start = await command("@safe-lora-bot start");
    expect(start.result).toEqual({ answered: "start", folder: "." });
    const head = (await t.forge.head(REPO)).sha;
    expect(start.replies()[0]).toBe(`Started: I cover \`.\` again and am looking at the current head (\`${head.slice(0, 12)}\`).`);
    expect((await t.jobs()).map((job) => [job.kind, job.payload])).toEqual([["scan", { repo: REPO, sha: head, reason: "start" }]]);
  });

  it("skips a comment that is gone, the bot's own, and one that does not address it", async () => {
    const num = t.forge.openDiscussionAs({ repo: REPO, author: MEMBER, title: "Q", text: "…" });
    expect(await runCommand(t.job, { repo: REPO, discussion: num, isPullRequest: false, commentId: "deadbeef", content: "@safe-lora-bot help" })).toEqual({ skipped: "the comment is gone" });
    const own = await t.forge.comment({ repo: REPO, discussion: num, text: "@safe-lora-bot help" });
    expect(await runCommand(t.job, { repo: REPO, discussion: num, isPullRequest: false, commentId: own, content: "@safe-lora-bot help" })).toEqual({ skipped: "the bot's own comment" });
    expect(await runCommand(t.job, { repo: REPO, discussion: num, isPullRequest: false, commentId: own, content: "thanks!" })).toEqual({ skipped: "does not address the bot" });
    expect(t.forge.botComments(REPO, num)).toHaveLength(1);
  });
});
