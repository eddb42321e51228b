import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import { HubForge } from "../../src/hub/hub-forge.js";
import { LocalHub } from "../../src/local-hub/server.js";
import { seedRepo } from "../../src/local-hub/seed.js";
import { storedFile, type StoredFile, type User } from "../../src/local-hub/store.js";
import { describeForgeContract, PEOPLE, type ForgeFixture } from "./forge-contract.js";

/** The Hub forge on a local Hub: the bot is a member of `acme` (so it reads its private repos), as are alice. */
async function hubFixture(): Promise<ForgeFixture> {
  const hub = await new LocalHub().start();
  const users = new Map<string, User>(["alice", "mallory", "carol", "safe-lora-bot"].map((name) => [name, hub.store.addUser(name)]));
  hub.store.addOrg("acme", [users.get("alice")!.id, users.get("safe-lora-bot")!.id]);
  const forge = await HubForge.connect({ hubUrl: hub.url, accessToken: users.get("safe-lora-bot")!.token });
  const changes = async (files: Record<string, string>) => {
    const map = new Map<string, StoredFile | null>();
    for (const [path, text] of Object.entries(files)) map.set(path, await storedFile(path, { kind: "memory", data: Buffer.from(text) }));
    return map;
  };
  const storedRepo = (name: string) => hub.store.repos.get(name)!;
  /** A call of the Hub's discussions API as `author`, as a person would make it. */
  const api = async (author: string, path: string, body: unknown): Promise<unknown> => {
    const response = await fetch(`${hub.url}/api/models/${path}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${users.get(author)!.token}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
    return response.json();
  };
  return {
    forge,
    ...PEOPLE,
    async createRepo({ repo, files, private: isPrivate }) {
      return (await seedRepo(hub, repo, Object.entries(files).map(([path, data]) => ({ path, data })), { private: isPrivate ?? false })).commit.id;
    },
    async commitToMain({ repo, files }) {
      return hub.store.commit(storedRepo(repo), "refs/heads/main", await changes(files), { title: "Update", authorId: users.get("alice")!.id }).id;
    },
    async commitToPullRequest({ repo, num, files }) {
      return hub.store.commit(storedRepo(repo), `refs/pr/${num}`, await changes(files), { title: "Maintainer's commit", authorId: users.get("alice")!.id }).id;
    },
    async openDiscussionAs({ repo, author, title, text }) {
      return ((await api(author, `${repo}/discussions`, { title, description: text, pullRequest: false })) as { num: number }).num;
    },
    async commentAs({ repo, discussion, author, text }) {
      return ((await api(author, `${repo}/discussions/${discussion}/comment`, { comment: text })) as { newMessage: { id: string } }).newMessage.id;
    },
    async discussion({ repo, num }) {
      const stored = storedRepo(repo).discussions.find((d) => d.num === num)!;
      return {
        status: stored.status,
        comments: stored.events.filter((e) => e.type === "comment").map((e) => ({ id: e.id, author: hub.store.users.get(e.authorId)!.name, text: e.content ?? "" })),
      };
    },
    close: () => hub.close(),
  };
}

describeForgeContract("the Hub forge on the local Hub", hubFixture);

describe("the Hub forge's errors", () => {
  let hub: LocalHub;
  let forge: HubForge;
  /** While set, the Hub answers every call with this status (Retry-After: 0, so the retries take no time). */
  let outage: number | null = null;
  beforeAll(async () => {
    hub = await new LocalHub().start();
    const bot = hub.store.addUser("safe-lora-bot");
    await seedRepo(hub, "acme/adapter", [{ path: "README.md", data: "x" }]);
    const flaky: typeof fetch = async (input, init) =>
      outage === null ? fetch(input, init) : new Response(JSON.stringify({ error: "busy" }), { status: outage, headers: { "Retry-After": "0" } });
    forge = await HubForge.connect({ hubUrl: hub.url, accessToken: bot.token, fetch: flaky });
  });
  afterAll(() => hub.close());

  const failure = async (call: () => Promise<unknown>) => {
    outage = 503;
    try {
      await call();
    } catch (error) {
      return error;
    } finally {
      outage = null;
    }
    return null;
  };

  it("a Hub that stays unavailable is hub-unavailable, for reads and for the bot's writes alike", async () => {
    for (const call of [() => forge.head("acme/adapter"), () => forge.pullRequests("acme/adapter"), () => forge.comment({ repo: "acme/adapter", discussion: 1, text: "hi" })]) {
      const error = await failure(call);
      expect(error).toBeInstanceOf(SafeLoraError);
      expect((error as SafeLoraError).code).toBe("hub-unavailable");
    }
  });

  it("a refused write says the bot's token lacks the right, naming what it was doing", async () => {
    const num = ((await (await fetch(`${hub.url}/api/models/acme/adapter/discussions`, {
      method: "POST",
      headers: { Authorization: `Bearer ${hub.store.addUser("alice").token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ title: "Q", description: "hello", pullRequest: false }),
    })).json()) as { num: number }).num;
    const opening = hub.store.repos.get("acme/adapter")!.discussions.find((d) => d.num === num)!.events[0]!.id;
    const error = await forge.editComment({ repo: "acme/adapter", discussion: num, commentId: opening, text: "defaced" }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "hub-access" });
    expect((error as Error).message).toMatch(/^acme\/adapter: the Hub did not let the bot edit its comment on #\d+ \(403: .*\); its token needs write access to the repo$/);
  });
});
