import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { coversRepo } from "../../src/bot/coverage.js";
import { acceptEvent } from "../../src/bot/intake.js";
import type { CommentEvent, ForgeEvent } from "../../src/forge/events.js";
import { forgeRegistry } from "../../src/forge/forge.js";
import { accountId, MemoryForge } from "../helpers/memory-forge.js";
import { botTest, MEMBER, REPO, type BotTest } from "./bot-test.js";

const SHA = "9d1c2b7e0f4a5b6c7d8e9f001122334455667788";

let t: BotTest;
beforeEach(async () => {
  t = await botTest({ botConfig: "excludeRepos: [acme/excluded]\n" });
});
afterEach(() => t.close());

const push = (overrides: Partial<ForgeEvent> = {}): ForgeEvent => ({ kind: "push", forge: "hub", repo: REPO, private: false, sha: SHA, ...overrides }) as ForgeEvent;
const comment = (overrides: Partial<CommentEvent> = {}): CommentEvent => ({
  kind: "comment",
  forge: "hub",
  repo: REPO,
  private: false,
  discussion: 3,
  isPullRequest: true,
  commentId: "c0ffee",
  authorId: accountId(MEMBER),
  content: "@safe-lora-bot repatch tau=0.4",
  hidden: false,
  ...overrides,
});

describe("acceptEvent", () => {
  it("stores a scan of a pushed head, for the event's forge", async () => {
    expect(await acceptEvent(t.context, push())).toEqual({ outcome: "accepted", detail: `scan ${SHA.slice(0, 12)}` });
    const [job] = await t.jobs();
    expect(job).toMatchObject({ kind: "scan", forge: "hub", repo: REPO, private: false, payload: { repo: REPO, sha: SHA, reason: "push" } });
  });

  it("stores one job however often the same event is delivered", async () => {
    await acceptEvent(t.context, push());
    expect(await acceptEvent(t.context, push())).toMatchObject({ outcome: "duplicate" });
    await acceptEvent(t.context, comment());
    expect(await acceptEvent(t.context, comment())).toMatchObject({ outcome: "duplicate" });
    expect(await t.jobs()).toHaveLength(2);
  });

  it("keeps the same repo and head on two forges apart", async () => {
    const context = { ...t.context, forges: forgeRegistry([t.forge, new MemoryForge(undefined, "github")]) };
    await acceptEvent(context, push());
    expect(await acceptEvent(context, push({ forge: "github" }))).toMatchObject({ outcome: "accepted" });
    await acceptEvent(context, comment({ forge: "github" }));
    const jobs = await t.jobs();
    expect(jobs.map((job) => [job.kind, job.forge])).toEqual([
      ["scan", "hub"],
      ["scan", "github"],
      ["command", "github"],
    ]);
    expect(new Set(jobs.map((job) => job.key)).size).toBe(3);
  });

  it("stores a command for a comment that mentions the bot, with what the job needs", async () => {
    expect(await acceptEvent(t.context, comment())).toEqual({ outcome: "accepted", detail: "command in #3" });
    const [job] = await t.jobs();
    expect(job).toMatchObject({
      kind: "command",
      forge: "hub",
      payload: { repo: REPO, discussion: 3, isPullRequest: true, commentId: "c0ffee", content: "@safe-lora-bot repatch tau=0.4" },
    });
  });

  it("treats a new discussion's opening message as a comment", async () => {
    expect(await acceptEvent(t.context, comment({ kind: "discussion", isPullRequest: false, content: "@safe-lora-bot help" }))).toMatchObject({ outcome: "accepted" });
  });

  it("ignores the bot's own comments, hidden ones and those that do not mention it", async () => {
    expect(await acceptEvent(t.context, comment({ authorId: t.forge.bot.id }))).toEqual({ outcome: "ignored", detail: "the bot's own comment" });
    expect(await acceptEvent(t.context, comment({ hidden: true }))).toEqual({ outcome: "ignored", detail: "hidden comment" });
    expect(await acceptEvent(t.context, comment({ content: "Looks good to me" }))).toEqual({ outcome: "ignored", detail: "does not mention the bot" });
    expect(await t.jobs()).toEqual([]);
  });

  it("ignores an excluded repo without taking its owner for covered", async () => {
    expect(await acceptEvent(t.context, push({ repo: "acme/excluded" }))).toEqual({ outcome: "ignored", detail: "repo excluded by BOT_CONFIG" });
    expect(await coversRepo(t.context, { forge: "hub", repo: "acme/other" })).toBe(false);
    expect(await t.jobs()).toEqual([]);
  });

  it("takes any event from a repo as its owner's consent, even one that asks for nothing", async () => {
    expect(await coversRepo(t.context, { forge: "hub", repo: "acme/other" })).toBe(false);
    expect(await acceptEvent(t.context, { kind: "ignored", forge: "hub", repo: REPO, reason: "discussion update" })).toEqual({ outcome: "ignored", detail: "discussion update" });
    expect(await coversRepo(t.context, { forge: "hub", repo: "acme/other" })).toBe(true);
  });

  it("ignores an event about no repo it could cover, taking nobody for covered", async () => {
    expect(await acceptEvent(t.context, { kind: "ignored", forge: "hub", reason: "not a model repo (space)" })).toEqual({ outcome: "ignored", detail: "not a model repo (space)" });
    expect(await coversRepo(t.context, { forge: "hub", repo: "acme/other" })).toBe(false);
  });
});
