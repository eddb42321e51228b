import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { answerComment } from "../../src/bot/acknowledgement.js";
import { onForge } from "../../src/bot/context.js";
import { postConfigNotice, postFailureNotice, resolveNotices } from "../../src/bot/notices.js";
import { SafeLoraError } from "../../src/errors.js";
import type { BotMemory } from "../../src/queue/bot-memory.js";
import { botTest, MEMBER, REPO, type BotTest } from "./bot-test.js";

let t: BotTest;
beforeEach(async () => {
  t = await botTest();
});
afterEach(() => t.close());

const failure = (key = "files-1:no-pair") => postFailureNotice(t.job, { repo: REPO, folder: ".", key, error: new SafeLoraError("no pair for this adapter", "no-pair"), config: null });
const notices = () => t.forge.repoOf(REPO).discussions.filter((d) => !d.isPullRequest);
const outage = () => new SafeLoraError("the forge answered 503", "hub-unavailable");

describe("notices are posted once, as the forge shows them", () => {
  it("a job that died before its notice reached the forge posts it when it runs again, once", async () => {
    t.forge.failNext("openDiscussion", outage());
    await expect(failure()).rejects.toThrow(/503/);
    expect(notices()).toEqual([]);
    const num = await failure();
    expect(notices().map((d) => d.num)).toEqual([num]);
    // Run again (the job retried after posting, before it was marked done): nothing new, the same number.
    expect(await failure()).toBe(num);
    expect(notices()).toHaveLength(1);
  });

  it("a bot that lost its memory still finds the notice it posted", async () => {
    const num = await failure();
    const forgetful: BotMemory = {
      noteCoveredOwner: async () => {},
      hasCoveredOwner: async () => false,
      uninstall: async () => {},
      reinstall: async () => {},
      isUninstalled: async () => false,
      isStopped: async () => false,
      stop: async () => {},
      start: async () => {},
      legacyAck: async () => null,
    };
    expect(await postFailureNotice(onForge({ ...t.context, memory: forgetful }, t.forge), { repo: REPO, folder: ".", key: "files-1:no-pair", error: new SafeLoraError("no pair", "no-pair"), config: null })).toBe(num);
    expect(notices()).toHaveLength(1);
  });

  it("a notice on the bot's open pull request counts too: a comment there, posted once", async () => {
    const { num: pr } = await t.forge.openPullRequest({ repo: REPO, baseSha: (await t.forge.head(REPO)).sha, title: "Safe LoRA", description: '<!-- safe-lora-bot:pull-request {"folder":"."} -->', files: [] });
    expect(await failure()).toBe(pr);
    expect(await failure()).toBe(pr);
    expect(t.forge.botComments(REPO, pr)).toHaveLength(1);
    expect(notices()).toEqual([]);
  });

  it("after the bot resolved it, the same failure is noticed again; after someone else closed it, it is not", async () => {
    const first = await failure();
    expect(await resolveNotices(t.job, { repo: REPO, folder: ".", outcome: "Done." })).toEqual([first]);
    const second = await failure();
    expect(second).not.toBe(first);
    const discussion = t.forge.discussionOf(REPO, second);
    discussion.status = "closed";
    discussion.closedBy = MEMBER;
    expect(await failure()).toBe(second);
    expect(notices()).toHaveLength(2);
  });

  it("each key is its own notice: another failure or another version of safe-lora.yaml", async () => {
    const a = await failure("files-1:no-pair");
    const b = await failure("files-2:no-pair");
    const problem = { key: "limits.maxModules", message: "must be a number", line: 1 } as unknown as Parameters<typeof postConfigNotice>[1]["problem"];
    const c = await postConfigNotice(t.job, { repo: REPO, problem, fileKey: "yaml-1" });
    expect(await postConfigNotice(t.job, { repo: REPO, problem, fileKey: "yaml-1" })).toBe(c);
    expect(new Set([a, b, c]).size).toBe(3);
    expect(notices()).toHaveLength(3);
  });
});

describe("a command's answer is one comment, found again by its marker", () => {
  const ask = () => {
    const num = t.forge.openDiscussionAs({ repo: REPO, author: MEMBER, title: "Q", text: "…" });
    return { num, commentId: t.forge.commentAs({ repo: REPO, discussion: num, author: MEMBER, text: "@safe-lora-bot status" }) };
  };

  it("the first answer is posted with a hidden marker naming the comment; later ones edit it", async () => {
    const { num, commentId } = ask();
    const id = await answerComment(t.job, { repo: REPO, discussion: num, commentId, text: "On it." });
    expect(t.forge.botComments(REPO, num)).toEqual([expect.objectContaining({ id, text: `On it.\n\n<!-- safe-lora-bot:ack {"comment":"${commentId}"} -->`, edits: 0 })]);
    // The job ran again after a crash, with nothing remembered: the same comment is edited.
    expect(await answerComment(t.job, { repo: REPO, discussion: num, commentId, text: "Done." })).toBe(id);
    expect(t.forge.botComments(REPO, num)).toEqual([expect.objectContaining({ id, text: expect.stringMatching(/^Done\.\n\n<!-- safe-lora-bot:ack/), edits: 1 })]);
    // Another comment in the same discussion gets its own answer.
    const other = t.forge.commentAs({ repo: REPO, discussion: num, author: MEMBER, text: "@safe-lora-bot help" });
    expect(await answerComment(t.job, { repo: REPO, discussion: num, commentId: other, text: "Help." })).not.toBe(id);
    expect(t.forge.botComments(REPO, num)).toHaveLength(2);
  });

  it("a command queued before the upgrade edits the answer the first release remembered", async () => {
    const { num, commentId } = ask();
    const old = await t.forge.comment({ repo: REPO, discussion: num, text: "On it (no marker: the first release)." });
    const remembered: BotMemory = Object.assign(Object.create(t.context.memory) as BotMemory, {
      legacyAck: async (ref: Parameters<BotMemory["legacyAck"]>[0]) => (ref.forge === "hub" && ref.repo === REPO && ref.commentId === commentId ? old : null),
    });
    expect(await answerComment(onForge({ ...t.context, memory: remembered }, t.forge), { repo: REPO, discussion: num, commentId, text: "Done." })).toBe(old);
    expect(t.forge.botComments(REPO, num)).toEqual([expect.objectContaining({ id: old, text: expect.stringMatching(/^Done\./) })]);
  });
});
