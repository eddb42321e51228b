import { commit } from "@huggingface/hub";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { findAdapterFolders } from "../../src/bot/adapters.js";
import { RepoConfig } from "../../src/config/bot-config.js";
import { HubRepoFiles } from "../../src/hub/hub-repo-files.js";
import { LocalHub } from "../../src/local-hub/server.js";
import { folderFiles, seedRepo } from "../../src/local-hub/seed.js";
import { storedFile, type User } from "../../src/local-hub/store.js";
import { goldenPath } from "../helpers/golden.js";

let hub: LocalHub;
let member: User;
let bot: User;
const SECRET_CONFIG = '{"peft_type": "LORA", "secret": "otherorg private adapter"}';

beforeEach(async () => {
  hub = await new LocalHub().start();
  member = hub.store.addUser("mallory");
  bot = hub.store.addUser("safe-lora-bot");
  hub.store.addOrg("acme", [member.id, bot.id]);
  // Another organisation the bot's token can read, but mallory cannot.
  hub.store.addOrg("otherorg", [bot.id]);
  await seedRepo(hub, "otherorg/private", [{ path: "adapter_config.json", data: SECRET_CONFIG }], { private: true });
  await seedRepo(hub, "acme/evil", await folderFiles(goldenPath("llama-gqa-qv", "adapter")));
});
afterEach(() => hub.close());

/**
 * A tree entry the local Hub now refuses in commits, put straight into the store: it stands for a Hub (or a
 * bug in one) that lists such a path, which the reading side must survive on its own.
 */
async function injectTreeEntry(repoName: string, path: string): Promise<void> {
  const repo = hub.store.repos.get(repoName)!;
  const head = repo.commits.get(repo.refs.get("refs/heads/main")!)!;
  (head.files as Map<string, unknown>).set(path, await storedFile(path, { kind: "memory", data: Buffer.from("{}") }));
}

const access = () => ({ hubUrl: hub.url, accessToken: bot.token });
const LEAVING = ["../../../../otherorg/private/resolve/main/adapter_config.json", "x/./adapter_config.json", "a//adapter_config.json", "\\..\\x", "/etc/adapter_config.json"];

describe("paths that leave the repo", () => {
  it.each(LEAVING)("refuses a Hub listing that holds %j, and reads nothing with the bot's token", async (path) => {
    await injectTreeEntry("acme/evil", path);
    const opened = HubRepoFiles.open(access(), { id: "acme/evil", revision: "main" });
    await expect(opened).rejects.toMatchObject({ code: "unsafe-path" });
    await expect(opened).rejects.toThrow(/the Hub listed a file .* which is not a path inside the repo/);
    expect(hub.bytesServed("otherorg/private")).toBe(0);
  });

  it("never lets the bot's scan turn a listed `..` path into another repo's adapter", async () => {
    await injectTreeEntry("acme/evil", "../../../../otherorg/private/resolve/main/adapter_config.json");
    const scan = HubRepoFiles.open(access(), { id: "acme/evil", revision: "main" }).then((files) => findAdapterFolders(files, RepoConfig.parse({})));
    await expect(scan).rejects.toMatchObject({ code: "unsafe-path" });
    expect(hub.requests.some((request) => request.path.includes("otherorg"))).toBe(false);
  });

  it("refuses to read a path with `..` segments from a pinned repo", async () => {
    const files = await HubRepoFiles.open(access(), { id: "acme/evil", revision: "main" });
    await expect(files.readText("../../otherorg/private/resolve/main/adapter_config.json")).rejects.toMatchObject({ code: "missing-file" });
    expect(hub.bytesServed("otherorg/private")).toBe(0);
  });

  it.each(["../escape.json", "a/../../escape.json", "./a.json", "a//b.json", "a\\b.json", "/abs.json", "a/\u0000.json"])("the local Hub refuses a commit of %j with 400, as the Hub does", async (path) => {
    const before = hub.store.repos.get("acme/evil")!.refs.get("refs/heads/main");
    await expect(
      commit({
        hubUrl: hub.url,
        accessToken: member.token,
        repo: { type: "model", name: "acme/evil" },
        title: "sneak a path in",
        operations: [{ operation: "addOrUpdate", path, content: new Blob(["{}"]) }],
        useXet: false,
      }),
    ).rejects.toThrow(/Invalid path/);
    expect(hub.store.repos.get("acme/evil")!.refs.get("refs/heads/main")).toBe(before);
  });
});
