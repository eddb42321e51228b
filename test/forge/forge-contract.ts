import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SafeLoraError, type SafeLoraErrorCode } from "../../src/errors.js";
import { pullRequestMarker, type Forge } from "../../src/forge/forge.js";

/** A comment as a forge stores it. */
export interface StoredComment {
  readonly id: string;
  /** The author's username. */
  readonly author: string;
  readonly text: string;
}

/**
 * A forge under test and the people around it: an organisation `org` with the member `member`, an `outsider`,
 * and a user account `user` of its own. Setup methods act as those people (never as the bot); `discussion`
 * reads what the forge stores, to check what the bot's calls wrote.
 */
export interface ForgeFixture {
  /** The forge, acting as the bot. */
  readonly forge: Forge;
  readonly org: string;
  readonly member: string;
  readonly outsider: string;
  readonly user: string;
  /** A repo (of `org`, or of `user`) with `files` on its default branch; returns the head's sha. */
  createRepo(params: { repo: string; files: Record<string, string>; private?: boolean }): Promise<string>;
  /** A commit to the default branch by `member`; returns its sha. */
  commitToMain(params: { repo: string; files: Record<string, string> }): Promise<string>;
  /** A commit on pull request `num`'s head by `member` (it moves the head); returns its sha. */
  commitToPullRequest(params: { repo: string; num: number; files: Record<string, string> }): Promise<string>;
  /** A plain discussion opened by `author`; returns its number. */
  openDiscussionAs(params: { repo: string; author: string; title: string; text: string }): Promise<number>;
  /** A comment by `author`; returns its id. */
  commentAs(params: { repo: string; discussion: number; author: string; text: string }): Promise<string>;
  /** A discussion as stored: its status and comments, the opening message first. */
  discussion(params: { repo: string; num: number }): Promise<{ status: string; comments: StoredComment[] }>;
  close(): Promise<void>;
}

/** The people every fixture has: `org` with its `member`, an `outsider`, and a `user` account with repos of its own. */
export const PEOPLE = { org: "acme", member: "alice", outsider: "mallory", user: "carol" } as const;

const codeOf = async (promise: Promise<unknown>): Promise<SafeLoraErrorCode | "no error" | "not a SafeLoraError"> => {
  try {
    await promise;
    return "no error";
  } catch (error) {
    return error instanceof SafeLoraError ? error.code : "not a SafeLoraError";
  }
};

const file = (text: string) => new Blob([text]);

/**
 * What every forge must do for the bot, run against each implementation (the Hub forge on the local Hub,
 * the in-memory forge of the unit tests): the same calls give the same observable results and error codes.
 */
export function describeForgeContract(name: string, makeFixture: () => Promise<ForgeFixture>): void {
  describe(`Forge contract: ${name}`, () => {
    let f: ForgeFixture;
    let forge: Forge;
    let repo: string;
    let base: string;
    beforeEach(async () => {
      f = await makeFixture();
      forge = f.forge;
      repo = `${f.org}/adapter`;
      base = await f.createRepo({ repo, files: { "README.md": "# card\n", "a/adapter_config.json": '{"peft_type":"LORA"}' } });
    });
    afterEach(() => f.close());

    /** Opens a bot pull request adding `safe-lora/x.txt`, for `folder`. */
    const openBotPullRequest = (folder = ".") =>
      forge.openPullRequest({ repo, baseSha: base, title: "Add Safe LoRA variant", description: `${pullRequestMarker(folder)}\nHello`, files: [{ path: "safe-lora/x.txt", content: file("one") }] });

    describe("repos and files", () => {
      it("gives the default branch's head and whether the repo is private", async () => {
        expect(await forge.head(repo)).toEqual({ repo, sha: base, private: false });
        const secret = `${f.org}/secret`;
        const sha = await f.createRepo({ repo: secret, files: { "README.md": "shh" }, private: true });
        expect(await forge.head(secret)).toEqual({ repo: secret, sha, private: true });
        const moved = await f.commitToMain({ repo, files: { "README.md": "# card v2\n" } });
        expect((await forge.head(repo)).sha).toBe(moved);
      });

      it("opens a revision pinned to its commit: paths, text and content keys, whatever is pushed later", async () => {
        const pinned = await forge.open({ repo, revision: base });
        expect(pinned.sha).toBe(base);
        expect(pinned.private).toBe(false);
        expect(pinned.paths().sort()).toEqual(expect.arrayContaining(["README.md", "a/adapter_config.json"]));
        await f.commitToMain({ repo, files: { "README.md": "# card v2\n" } });
        expect(await pinned.readText("README.md")).toBe("# card\n");
        const later = await forge.open({ repo, revision: (await forge.head(repo)).sha });
        expect(await later.readText("README.md")).toBe("# card v2\n");
        // A content key changes exactly when the content does.
        expect(await later.contentKey("README.md")).not.toBe(await pinned.contentKey("README.md"));
        expect(await later.contentKey("a/adapter_config.json")).toBe(await pinned.contentKey("a/adapter_config.json"));
        expect(await pinned.contentKey("missing.txt")).toBeNull();
        expect(await pinned.exists("missing.txt")).toBe(false);
        expect(await codeOf(pinned.readText("missing.txt"))).toBe("missing-file");
        await Promise.all([pinned.close(), later.close()]);
      });

      it("reads byte ranges of a file", async () => {
        const pinned = await forge.open({ repo, revision: base });
        const source = await pinned.openBytes("a/adapter_config.json");
        expect(source.size).toBe('{"peft_type":"LORA"}'.length);
        expect(new TextDecoder().decode(await source.read(2, 9))).toBe("peft_type");
        await pinned.close();
      });

      it("answers a missing repo or revision with hub-not-found", async () => {
        expect(await codeOf(forge.head(`${f.org}/nothing-here`))).toBe("hub-not-found");
        expect(await codeOf(forge.open({ repo: `${f.org}/nothing-here`, revision: "main" }))).toBe("hub-not-found");
        expect(await codeOf(forge.open({ repo, revision: "0".repeat(40) }))).toBe("hub-not-found");
      });

      it("lists an owner's repos with their heads, or the one repo named", async () => {
        const other = await f.createRepo({ repo: `${f.org}/other`, files: { "README.md": "x" } });
        const heads = (await forge.reposOf(f.org)).sort((a, b) => a.repo.localeCompare(b.repo));
        expect(heads).toEqual([
          { repo, sha: base, private: false },
          { repo: `${f.org}/other`, sha: other, private: false },
        ]);
        expect(await forge.reposOf(repo)).toEqual([{ repo, sha: base, private: false }]);
      });
    });

    describe("pull requests", () => {
      it("opens one from the base with the files, lists it by its marker and reads its head", async () => {
        const { num, commit } = await openBotPullRequest("a");
        expect(await forge.pullRequests(repo)).toEqual([{ num, status: "open", folder: "a", description: `${pullRequestMarker("a")}\nHello` }]);
        const head = await forge.open({ repo, revision: forge.pullRequestHead(repo, num) });
        expect(head.sha).toBe(commit);
        expect(await head.readText("safe-lora/x.txt")).toBe("one");
        expect(await head.readText("README.md")).toBe("# card\n");
        // The default branch is untouched.
        expect(await (await forge.open({ repo, revision: base })).exists("safe-lora/x.txt")).toBe(false);
        expect(forge.pullRequestUrl(repo, num)).toContain(String(num));
      });

      it("lists only the bot's pull requests that carry its marker, newest first", async () => {
        await forge.openPullRequest({ repo, baseSha: base, title: "no marker", description: "just text", files: [{ path: "x.txt", content: file("x") }] });
        await f.openDiscussionAs({ repo, author: f.member, title: "pretend", text: pullRequestMarker("a") });
        const first = await openBotPullRequest("a");
        const second = await openBotPullRequest("b");
        expect((await forge.pullRequests(repo)).map((pr) => [pr.num, pr.folder])).toEqual([
          [second.num, "b"],
          [first.num, "a"],
        ]);
      });

      it("pushes a commit on the head, and answers stale when the head moved since", async () => {
        const { num, commit } = await openBotPullRequest();
        const pushed = await forge.pushToPullRequest({ repo, num, parent: commit, title: "Re-patch", files: [{ path: "safe-lora/x.txt", content: file("two") }] });
        expect(pushed).not.toBe("stale");
        const head = await forge.open({ repo, revision: forge.pullRequestHead(repo, num) });
        expect(head.sha).toBe((pushed as { commit: string }).commit);
        expect(await head.readText("safe-lora/x.txt")).toBe("two");
        await f.commitToPullRequest({ repo, num, files: { "notes.txt": "a maintainer's commit" } });
        expect(await forge.pushToPullRequest({ repo, num, parent: head.sha, title: "Re-patch", files: [{ path: "safe-lora/x.txt", content: file("three") }] })).toBe("stale");
        expect(await (await forge.open({ repo, revision: forge.pullRequestHead(repo, num) })).readText("safe-lora/x.txt")).toBe("two");
      });

      it("replaces the description, which still names its folder", async () => {
        const { num } = await openBotPullRequest("a");
        await forge.updateDescription({ repo, num, text: `${pullRequestMarker("a")}\nRefreshed` });
        expect((await forge.pullRequests(repo))[0]!.description).toBe(`${pullRequestMarker("a")}\nRefreshed`);
        expect((await f.discussion({ repo, num })).comments[0]!.text).toBe(`${pullRequestMarker("a")}\nRefreshed`);
      });

      it("closes one with a last comment", async () => {
        const { num } = await openBotPullRequest();
        await forge.closePullRequest({ repo, num, comment: "Closed as asked." });
        expect((await forge.pullRequests(repo))[0]!.status).toBe("closed");
        const stored = await f.discussion({ repo, num });
        expect(stored.status).toBe("closed");
        expect(stored.comments.at(-1)).toMatchObject({ author: forge.bot.name, text: "Closed as asked." });
      });

      it("words how to try a variant from the pull request's head, and after merging", () => {
        const before = forge.tryVariant({ repo, subfolder: "a/safe-lora", aligned: "org/chat", num: 7 });
        expect(before.beforeMerging).toContain(forge.pullRequestHead(repo, 7));
        expect(before.beforeMerging).toContain("a/safe-lora");
        expect(before.afterMerging).not.toContain(forge.pullRequestHead(repo, 7));
        expect(forge.tryVariant({ repo, subfolder: "safe-lora", aligned: "org/chat", num: null }).beforeMerging).not.toContain(forge.pullRequestHead(repo, 7));
      });
    });

    describe("comments and discussions", () => {
      it("comments, and edits its own comment in place", async () => {
        const num = await f.openDiscussionAs({ repo, author: f.member, title: "Question", text: "@bot help" });
        const id = await forge.comment({ repo, discussion: num, text: "On it." });
        await forge.editComment({ repo, discussion: num, commentId: id, text: "Done." });
        const stored = await f.discussion({ repo, num });
        expect(stored.comments.map((c) => [c.author, c.text])).toEqual([
          [f.member, "@bot help"],
          [forge.bot.name, "Done."],
        ]);
        expect(stored.comments[1]!.id).toBe(id);
      });

      it("may not edit someone else's comment (hub-access), nor comment where there is no discussion (hub-not-found)", async () => {
        const num = await f.openDiscussionAs({ repo, author: f.member, title: "Question", text: "hello" });
        const theirs = await f.commentAs({ repo, discussion: num, author: f.member, text: "mine" });
        expect(await codeOf(forge.editComment({ repo, discussion: num, commentId: theirs, text: "defaced" }))).toBe("hub-access");
        expect((await f.discussion({ repo, num })).comments.at(-1)!.text).toBe("mine");
        expect(await codeOf(forge.comment({ repo, discussion: 999, text: "hello?" }))).toBe("hub-not-found");
      });

      it("names a comment's author, and null for a comment that is not there", async () => {
        const num = await f.openDiscussionAs({ repo, author: f.member, title: "Question", text: "hello" });
        const id = await f.commentAs({ repo, discussion: num, author: f.outsider, text: "me too" });
        expect(await forge.commentAuthor({ repo, discussion: num, commentId: id })).toBe(f.outsider);
        expect(await forge.commentAuthor({ repo, discussion: num, commentId: "0123456789abcdef01234567" })).toBeNull();
      });

      it("lists only its own open discussions with their opening text, and closes one with a comment", async () => {
        await f.openDiscussionAs({ repo, author: f.member, title: "Not the bot's", text: "<!-- safe-lora-bot:notice {} -->" });
        const mine = await forge.openDiscussion({ repo, title: "Safe LoRA could not patch this adapter", text: "notice text" });
        await openBotPullRequest();
        expect(await forge.botDiscussions(repo)).toEqual([{ num: mine, text: "notice text" }]);
        await forge.closeDiscussion({ repo, discussion: mine, comment: "Fixed. Closing this discussion." });
        expect(await forge.botDiscussions(repo)).toEqual([]);
        const stored = await f.discussion({ repo, num: mine });
        expect(stored.status).toBe("closed");
        expect(stored.comments.at(-1)).toMatchObject({ author: forge.bot.name, text: "Fixed. Closing this discussion." });
      });
    });

    describe("what the bot wrote, read back (its markers)", () => {
      it("lists its own discussions and pull requests of any status with its messages in each, and who closed them", async () => {
        const theirs = await f.openDiscussionAs({ repo, author: f.member, title: "Not the bot's", text: "<!-- safe-lora-bot:notice {} -->" });
        await forge.comment({ repo, discussion: theirs, text: "the bot's answer there" });
        const notice = await forge.openDiscussion({ repo, title: "Safe LoRA could not patch this adapter", text: "notice text" });
        await f.commentAs({ repo, discussion: notice, author: f.member, text: "thanks" });
        const { num: pr } = await openBotPullRequest();
        const onPr = await forge.comment({ repo, discussion: pr, text: "a notice on the pull request" });
        const threads = async () => [...(await forge.botThreads(repo))].sort((a, b) => a.num - b.num);
        const open = await threads();
        expect(open.map(({ num, isPullRequest, status, closedByBot }) => ({ num, isPullRequest, status, closedByBot }))).toEqual(
          [
            { num: notice, isPullRequest: false, status: "open", closedByBot: false },
            { num: pr, isPullRequest: true, status: "open", closedByBot: false },
          ].sort((a, b) => a.num - b.num),
        );
        expect(open.find((t) => t.num === notice)!.messages.map((m) => m.text)).toEqual(["notice text"]);
        expect(open.find((t) => t.num === pr)!.messages.at(-1)).toEqual({ id: onPr, text: "a notice on the pull request" });
        await forge.closeDiscussion({ repo, discussion: notice, comment: "Fixed. Closing this discussion." });
        const closed = (await threads()).find((t) => t.num === notice)!;
        expect(closed).toMatchObject({ status: "closed", closedByBot: true });
        expect(closed.messages.map((m) => m.text)).toEqual(["notice text", "Fixed. Closing this discussion."]);
      });

      it("lists its own comments on any discussion, as they stand after edits", async () => {
        const num = await f.openDiscussionAs({ repo, author: f.member, title: "Question", text: "@bot help" });
        // An outsider's comment carrying the bot's hidden markers is still not the bot's: it could otherwise pass for a posted notice or answer.
        await f.commentAs({ repo, discussion: num, author: f.outsider, text: '<!-- safe-lora-bot:ack {"comment":"x"} --> <!-- safe-lora-bot:notice {"key":"k","folder":"."} -->' });
        const id = await forge.comment({ repo, discussion: num, text: "On it." });
        await forge.editComment({ repo, discussion: num, commentId: id, text: "Done." });
        expect(await forge.listBotComments({ repo, discussion: num })).toEqual([{ id, text: "Done." }]);
      });
    });

    describe("who may command the bot", () => {
      it("members of the owning organisation, and the owner of a user's repo", async () => {
        expect(await forge.isMaintainer({ repo, username: f.member })).toBe(true);
        expect(await forge.isMaintainer({ repo, username: f.outsider })).toBe(false);
        const own = `${f.user}/lora`;
        await f.createRepo({ repo: own, files: { "README.md": "x" } });
        expect(await forge.isMaintainer({ repo: own, username: f.user })).toBe(true);
        expect(await forge.isMaintainer({ repo: own, username: f.member })).toBe(false);
      });
    });
  });
}
