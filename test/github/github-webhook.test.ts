import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { MAX_PUSH_COMMITS, parseGithubEvent } from "../../src/github/github-webhook.js";
import { appBot, example, pushAdding } from "./webhook-examples.js";

const SLUG = "safe-lora";
const REPO = "Codertocat/Hello-World";
const SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
const parseEvent = (name: string, payload: unknown) => parseGithubEvent(name, payload, { appSlug: SLUG });

describe("app.yml, the App's manifest", () => {
  const manifest = parse(readFileSync(new URL("../../app.yml", import.meta.url), "utf8")) as Record<string, any>;

  it("asks for exactly the events and permissions the bot uses", () => {
    expect([...manifest.default_events].sort()).toEqual(["installation", "installation_repositories", "issue_comment", "pull_request", "push"]);
    expect(manifest.default_permissions).toEqual({ contents: "write", pull_requests: "write", issues: "write", metadata: "read" });
  });

  it("is a private App whose webhook points at the bot's route", () => {
    expect(manifest.public).toBe(false);
    expect(typeof manifest.name).toBe("string");
    expect(new URL(manifest.hook_attributes.url).pathname).toBe("/api/github/webhooks");
    expect(() => new URL(manifest.url)).not.toThrow();
    expect(() => new URL(manifest.redirect_url)).not.toThrow();
  });
});

describe("parseGithubEvent: push", () => {
  it("a push to the default branch adding an adapter_config.json (any folder) is a push of `after`", () => {
    expect(parseEvent("push", pushAdding(["adapters/chat/adapter_config.json"]))).toEqual({
      ok: true,
      event: { kind: "push", forge: "github", repo: REPO, private: false, sha: SHA },
      installationId: 1,
    });
  });

  it("modified adapter weights count too, in any commit of the push", () => {
    const push = pushAdding(["README.md"]);
    push.commits.push({ ...push.commits[0], added: [], modified: ["lora/adapter_model.safetensors"] });
    const parsed = parseEvent("push", push);
    expect(parsed.ok && parsed.event).toEqual({ kind: "push", forge: "github", repo: REPO, private: false, sha: SHA });
  });

  it("a full fine-tune's config or weights count too: config.json, a shard, the shard index, model.safetensors", () => {
    for (const path of ["config.json", "ft/model-00002-of-00004.safetensors", "model.safetensors.index.json", "ft/model.safetensors"]) {
      const parsed = parseEvent("push", pushAdding([path]));
      expect(parsed.ok && parsed.event.kind, path).toBe("push");
    }
    // Named like one, but not save_pretrained's: not a checkpoint.
    expect((parseEvent("push", pushAdding(["model-1-of-2.safetensors", "old-config.json"])) as { event: { kind: string } }).event.kind).toBe("ignored");
  });

  it("the example push (README.md only) is ignored, with its repo and installation", () => {
    expect(parseEvent("push", example("push", (payload) => payload.ref === "refs/heads/master"))).toEqual({
      ok: true,
      event: { kind: "ignored", forge: "github", repo: REPO, reason: "no adapter or checkpoint config or weights added or modified" },
      installationId: 1,
    });
  });

  it("a file merely named like an adapter's is not one; a removed adapter_config.json makes no job", () => {
    const push = pushAdding(["notes/adapter_config.json.bak", "my_adapter_config.json"]);
    push.commits[0].removed = ["old/adapter_config.json"];
    const parsed = parseEvent("push", push);
    expect(parsed.ok && parsed.event.kind).toBe("ignored");
  });

  it("a push listing the most commits GitHub lists may touch adapters it does not show: scanned", () => {
    const push = pushAdding(["README.md"]);
    push.commits = Array.from({ length: MAX_PUSH_COMMITS }, () => push.commits[0]);
    const parsed = parseEvent("push", push);
    expect(parsed.ok && parsed.event.kind).toBe("push");
  });

  it("a tag push (the examples' refs/tags/simple-tag) and another branch are ignored", () => {
    const tag = example("push", (payload) => payload.ref === "refs/tags/simple-tag" && payload.deleted === false);
    expect(parseEvent("push", tag)).toEqual({
      ok: true,
      event: { kind: "ignored", forge: "github", repo: REPO, reason: "not the default branch (refs/heads/master)" },
      installationId: 4242,
    });
    const branch = pushAdding(["adapter_config.json"]);
    branch.ref = "refs/heads/feature";
    const parsed = parseEvent("push", branch);
    expect(parsed.ok && parsed.event).toEqual({ kind: "ignored", forge: "github", repo: REPO, reason: "not the default branch (refs/heads/master)" });
  });

  it("the default branch deleted (deleted: true, after all zeros) is ignored", () => {
    const deleted = pushAdding(["adapter_config.json"]);
    Object.assign(deleted, { deleted: true, after: "0".repeat(40), commits: [] });
    const parsed = parseEvent("push", deleted);
    expect(parsed.ok && parsed.event).toEqual({ kind: "ignored", forge: "github", repo: REPO, reason: "the default branch was deleted" });
  });

  it("the App's own push is ignored; another App's bot is not the App", () => {
    const own = pushAdding(["adapter_config.json"]);
    own.sender = appBot(SLUG);
    const parsed = parseEvent("push", own);
    expect(parsed.ok && parsed.event).toEqual({ kind: "ignored", forge: "github", repo: REPO, reason: "the app's own" });
    const other = pushAdding(["adapter_config.json"]);
    other.sender = appBot("dependabot");
    const again = parseEvent("push", other);
    expect(again.ok && again.event.kind).toBe("push");
  });
});

describe("parseGithubEvent: issue_comment", () => {
  const created = () => example("issue_comment", (payload) => payload.action === "created" && payload.installation !== undefined);

  it("a created comment on an issue is a comment event", () => {
    expect(parseEvent("issue_comment", created())).toEqual({
      ok: true,
      event: {
        kind: "comment",
        forge: "github",
        repo: REPO,
        private: false,
        discussion: 1,
        isPullRequest: false,
        commentId: "492700400",
        authorId: "21031067",
        content: "You are totally right! I'll get this fixed right away.",
        hidden: false,
      },
      installationId: 1,
    });
  });

  it("on a pull request (`issue.pull_request` present) it says so", () => {
    const comment = created();
    comment.issue.pull_request = { url: "https://api.github.com/repos/Codertocat/Hello-World/pulls/1" };
    const parsed = parseEvent("issue_comment", comment);
    expect(parsed.ok && parsed.event).toMatchObject({ kind: "comment", isPullRequest: true, discussion: 1 });
  });

  it("edited and deleted comments are ignored", () => {
    for (const action of ["edited", "deleted"]) {
      const parsed = parseEvent("issue_comment", example("issue_comment", (payload) => payload.action === action));
      expect(parsed.ok && parsed.event).toEqual({ kind: "ignored", forge: "github", repo: REPO, reason: `comment ${action}` });
    }
  });

  it("the App's own comment is ignored", () => {
    const comment = created();
    comment.sender = appBot(SLUG);
    comment.comment.user = appBot(SLUG);
    const parsed = parseEvent("issue_comment", comment);
    expect(parsed.ok && parsed.event).toEqual({ kind: "ignored", forge: "github", repo: REPO, reason: "the app's own" });
  });
});

describe("parseGithubEvent: installations", () => {
  it("an installation deleted names its repositories and account", () => {
    expect(parseEvent("installation", example("installation", (payload) => payload.action === "deleted"))).toEqual({
      ok: true,
      event: { kind: "ignored", forge: "github", reason: "installation removed" },
      installationId: 2,
      removedRepos: ["octocat/Hello-World"],
      removedOwner: "octocat",
    });
  });

  it("repositories removed from an installation are named", () => {
    expect(parseEvent("installation_repositories", example("installation_repositories", (payload) => payload.action === "removed"))).toEqual({
      ok: true,
      event: { kind: "ignored", forge: "github", reason: "installation removed" },
      installationId: 2,
      removedRepos: ["octocat/Hello-World"],
    });
  });

  it("installations created and repositories added remove nothing, and name what they add", () => {
    expect(parseEvent("installation", example("installation", (payload) => payload.action === "created"))).toEqual({
      ok: true,
      event: { kind: "ignored", forge: "github", reason: "installation created" },
      installationId: 957387,
      addedRepos: ["Codertocat/Hello-World"],
      addedOwner: "Codertocat",
    });
    expect(parseEvent("installation_repositories", example("installation_repositories", (payload) => payload.action === "added"))).toEqual({
      ok: true,
      event: { kind: "ignored", forge: "github", reason: "installation_repositories added" },
      installationId: 957387,
      addedRepos: ["Codertocat/Space"],
    });
  });

  it("other events (pull_request, ping) are ignored by name and action", () => {
    const parsed = parseEvent("pull_request", example("pull_request", (payload) => payload.action === "opened"));
    expect(parsed.ok && parsed.event).toEqual({ kind: "ignored", forge: "github", repo: REPO, reason: "pull_request opened" });
    const ping = parseEvent("ping", { zen: "Design for failure.", hook_id: 1 });
    expect(ping.ok && ping.event).toEqual({ kind: "ignored", forge: "github", reason: "ping" });
  });
});

describe("parseGithubEvent: hostile payloads", () => {
  it("a repository.full_name that is not owner/name is refused, saying which field", () => {
    for (const name of ["Hello-World", "Codertocat/..", "Codertocat/.", "../etc/passwd", "Codertocat/Hello/World", "-x/y", "Codertocat/Hello World", `${"a".repeat(40)}/x`]) {
      const push = pushAdding(["adapter_config.json"]);
      push.repository.full_name = name;
      expect(parseEvent("push", push)).toEqual({ ok: false, reason: "push event: repository.full_name: must be a repository's full name like owner/name" });
    }
  });

  it("wrong types are refused, naming the field", () => {
    const push = pushAdding(["adapter_config.json"]);
    push.after = 6113728;
    expect(parseEvent("push", push)).toMatchObject({ ok: false, reason: expect.stringMatching(/^push event: after: /) });
    const sha = pushAdding(["adapter_config.json"]);
    sha.after = "main";
    expect(parseEvent("push", sha)).toEqual({ ok: false, reason: "push event: after: must be a hex commit sha" });
    const comment = example("issue_comment", (payload) => payload.action === "created");
    comment.comment.id = "492700400; DROP TABLE";
    expect(parseEvent("issue_comment", comment)).toMatchObject({ ok: false, reason: expect.stringMatching(/^issue_comment event: comment\.id: /) });
    const isPrivate = example("issue_comment", (payload) => payload.action === "created");
    isPrivate.repository.private = "no";
    expect(parseEvent("issue_comment", isPrivate)).toMatchObject({ ok: false, reason: expect.stringMatching(/repository\.private/) });
    for (const body of [null, "push", 42, []]) expect(parseEvent("push", body).ok).toBe(false);
  });

  it("oversized fields are refused: a comment over GitHub's 65,536 characters, more commits than GitHub lists", () => {
    const comment = example("issue_comment", (payload) => payload.action === "created");
    comment.comment.body = "x".repeat(65_537);
    expect(parseEvent("issue_comment", comment)).toMatchObject({ ok: false, reason: expect.stringMatching(/^issue_comment event: comment\.body: /) });
    const push = pushAdding(["adapter_config.json"]);
    push.commits = Array.from({ length: MAX_PUSH_COMMITS + 1 }, () => push.commits[0]);
    expect(parseEvent("push", push)).toMatchObject({ ok: false, reason: expect.stringMatching(/^push event: commits: /) });
  });
});
