import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseHubEvent } from "../../src/hub/hub-webhook.js";

const sample = (name: string) => JSON.parse(readFileSync(new URL(`../fixtures/hub-payloads/${name}`, import.meta.url), "utf8")) as Record<string, unknown>;
const eventOf = (json: unknown) => {
  const parsed = parseHubEvent(json);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.event;
};
const repo = "acme-health/llama3-dialog-summary-lora";

describe("the Hub's webhooks as forge events", () => {
  it("a push to main is a push of its new head", () => {
    expect(eventOf(sample("repo-content-main-push.json"))).toEqual({ kind: "push", forge: "hub", repo, private: false, sha: "9d1c2b7e0f4a5b6c7d8e9f001122334455667788" });
  });

  it("a comment on a pull request, with its author's id and text", () => {
    expect(eventOf(sample("discussion-comment-on-pr.json"))).toEqual({
      kind: "comment",
      forge: "hub",
      repo,
      private: false,
      discussion: 3,
      isPullRequest: true,
      commentId: "6398872887bfcfb93a306f18",
      authorId: "61d2000c3c2083e1c08af22d",
      content: "@safe-lora-bot repatch tau=0.4",
      hidden: false,
    });
  });

  it("a new discussion carries its opening message as its first comment", () => {
    expect(eventOf(sample("discussion-pr-created.json"))).toMatchObject({ kind: "discussion", discussion: 3, commentId: "639885d811ae2bad2b7ba462", content: "This pull request adds a Safe LoRA variant." });
  });

  it("a hidden comment, or one whose text is withheld, is hidden", () => {
    const payload = sample("discussion-comment-on-pr.json");
    const comment = payload.comment as Record<string, unknown>;
    expect(eventOf({ ...payload, comment: { ...comment, hidden: true } })).toMatchObject({ hidden: true });
    const { content: _content, ...withheld } = comment;
    expect(eventOf({ ...payload, comment: withheld })).toMatchObject({ hidden: true, content: "" });
  });

  it("ignores other repo types without naming the repo, and other events of a model repo naming it", () => {
    expect(eventOf(sample("repo-content-pr-opened.recorded.json"))).toEqual({ kind: "ignored", forge: "hub", reason: "not a model repo (space)" });
    const push = sample("repo-content-main-push.json");
    expect(eventOf({ ...push, updatedRefs: [{ ref: "refs/pr/5", oldSha: null, newSha: "227c78346870a85e5de4fff8a585db68df975406" }] })).toEqual({
      kind: "ignored",
      forge: "hub",
      repo,
      reason: "no update of refs/heads/main (pull request refs are ignored)",
    });
    expect(eventOf({ ...push, updatedRefs: [{ ref: "refs/heads/main", oldSha: "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567", newSha: null }] })).toMatchObject({ kind: "ignored", reason: "main was deleted" });
    const comment = sample("discussion-comment-on-pr.json");
    expect(eventOf({ ...comment, event: { action: "update", scope: "discussion.comment" } })).toMatchObject({ kind: "ignored", repo, reason: "discussion update" });
    expect(eventOf({ ...push, event: { action: "create", scope: "repo" } })).toMatchObject({ kind: "ignored", repo, reason: "repo create" });
  });

  it("refuses a malformed payload, naming the field", () => {
    expect(parseHubEvent({ ...sample("repo-content-main-push.json"), updatedRefs: "main" })).toEqual({ ok: false, reason: "updatedRefs: Invalid input: expected array, received string" });
  });
});
