import { Webhooks } from "@octokit/webhooks";
import { App, Octokit } from "octokit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalGitHub } from "../../src/local-github/server.js";
import { example } from "../github/webhook-examples.js";
import type { Account, GitHubAppRecord, Installation, Repo } from "../../src/local-github/store.js";
import { appKeys, LocalOctokit, startReceiver } from "./helpers.js";

const { privateKey, publicKey } = appKeys();
const SECRET = "webhook-s3cret";

let gh: LocalGitHub;
let app: GitHubAppRecord;
let installation: Installation;
let acme: Account;
let alice: Account;
let adapters: Repo;
let other: Repo;
let bot: Octokit;
let receiver: Awaited<ReturnType<typeof startReceiver>>;

/** The deliveries received since `from`, parsed, with their event names. */
function since(from: number) {
  return receiver.received.slice(from).map((d) => ({ event: d.headers["x-github-event"], payload: JSON.parse(d.raw) as Record<string, any> }));
}

beforeAll(async () => {
  gh = await new LocalGitHub().start();
  alice = gh.store.addUser("alice");
  acme = gh.store.addOrg("acme", [alice]);
  adapters = gh.store.createRepo("acme/adapters", { files: [{ path: "README.md", data: "# a\n" }, { path: "old.txt", data: "old\n" }] });
  other = gh.store.createRepo("acme/other");
  receiver = await startReceiver();
  app = gh.store.addApp({ name: "Safe LoRA", publicKey });
  gh.webhooks.subscribe(app, receiver.url, SECRET);
  installation = gh.store.install(app, acme, [adapters], alice);
  bot = (await new App({ appId: app.id, privateKey, Octokit: LocalOctokit.defaults({ baseUrl: gh.url }) }).getInstallationOctokit(installation.id)) as unknown as Octokit;
  await gh.webhooks.settled();
});

afterAll(async () => {
  await gh.close();
  await receiver.close();
});

describe("webhook deliveries", () => {
  it("installation.created: signed, with GitHub's headers, its repositories and the sender", async () => {
    const delivery = receiver.received[0]!;
    expect(delivery.headers["x-github-event"]).toBe("installation");
    expect(delivery.headers["x-github-delivery"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(delivery.headers["x-github-hook-installation-target-id"]).toBe(String(app.id));
    const signature = String(delivery.headers["x-hub-signature-256"]);
    expect(await new Webhooks({ secret: SECRET }).verify(delivery.raw, signature)).toBe(true);
    expect(await new Webhooks({ secret: "another secret" }).verify(delivery.raw, signature)).toBe(false);
    const payload = JSON.parse(delivery.raw) as Record<string, any>;
    expect(payload).toMatchObject({ action: "created", installation: { id: installation.id, account: { login: "acme" } }, sender: { login: "alice" } });
    expect(payload.repositories.map((r: { full_name: string }) => r.full_name)).toEqual(["acme/adapters"]);
    expect(gh.webhooks.deliveries[0]!.status).toBe(202);
  });

  it("push as a user: ref, before, after, commits with added/modified/removed, installation, repository, sender", async () => {
    const from = receiver.received.length;
    const before = adapters.refs.get("refs/heads/main");
    const commit = gh.store.pushAs(alice, adapters, [{ path: "README.md", data: "# b\n" }, { path: "lora/adapter_config.json", data: "{}\n" }], { delete: ["old.txt"], message: "tweak" });
    gh.store.pushAs(alice, other, [{ path: "x.txt", data: "x\n" }]);
    await gh.webhooks.settled();
    const pushes = since(from);
    expect(pushes.map((p) => [p.event, p.payload.repository.full_name])).toEqual([["push", "acme/adapters"]]);
    const payload = pushes[0]!.payload;
    expect(payload).toMatchObject({ ref: "refs/heads/main", before, after: commit.sha, created: false, deleted: false, installation: { id: installation.id }, sender: { login: "alice" }, pusher: { name: "alice" } });
    expect(payload.commits).toHaveLength(1);
    expect(payload.commits[0]).toMatchObject({ id: commit.sha, message: "tweak", added: ["lora/adapter_config.json"], modified: ["README.md"], removed: ["old.txt"] });
    expect(payload.head_commit.id).toBe(commit.sha);
  });

  it("a branch created through the API is a push with created: true, and a pull request opened is pull_request.opened", async () => {
    const from = receiver.received.length;
    const main = adapters.refs.get("refs/heads/main")!;
    const head = await bot.rest.git.getCommit({ owner: "acme", repo: "adapters", commit_sha: main });
    const tree = await bot.rest.git.createTree({ owner: "acme", repo: "adapters", base_tree: head.data.tree.sha, tree: [{ path: "variant.txt", mode: "100644", type: "blob", content: "v\n" }] });
    const commit = await bot.rest.git.createCommit({ owner: "acme", repo: "adapters", message: "variant", tree: tree.data.sha, parents: [main] });
    await bot.rest.git.createRef({ owner: "acme", repo: "adapters", ref: "refs/heads/safe-lora/v1", sha: commit.data.sha });
    const pull = await bot.rest.pulls.create({ owner: "acme", repo: "adapters", title: "Variant", head: "safe-lora/v1", base: "main" });
    await gh.webhooks.settled();
    const got = since(from);
    expect(got.map((d) => d.event)).toEqual(["push", "pull_request"]);
    expect(got[0]!.payload).toMatchObject({ ref: "refs/heads/safe-lora/v1", created: true, before: "0".repeat(40), after: commit.data.sha, sender: { login: "safe-lora[bot]" } });
    expect(got[0]!.payload.commits[0].added).toEqual(["variant.txt"]);
    expect(got[1]!.payload).toMatchObject({ action: "opened", number: pull.data.number, pull_request: { head: { ref: "safe-lora/v1", sha: commit.data.sha } } });
  });

  it("issue_comment.created on a pull request carries issue.pull_request; on an issue it does not", async () => {
    const from = receiver.received.length;
    const pull = adapters.issues.find((i) => i.pull)!;
    const asUser = new LocalOctokit({ baseUrl: gh.url, auth: alice.token });
    const comment = await asUser.rest.issues.createComment({ owner: "acme", repo: "adapters", issue_number: pull.number, body: "@safe-lora repatch tau=0.4" });
    const issue = await bot.rest.issues.create({ owner: "acme", repo: "adapters", title: "notice" });
    await asUser.rest.issues.createComment({ owner: "acme", repo: "adapters", issue_number: issue.data.number, body: "thanks" });
    await gh.webhooks.settled();
    const got = since(from);
    expect(got.map((d) => [d.event, d.payload.action])).toEqual([
      ["issue_comment", "created"],
      ["issues", "opened"],
      ["issue_comment", "created"],
    ]);
    expect(got[0]!.payload).toMatchObject({ comment: { id: comment.data.id, body: "@safe-lora repatch tau=0.4", user: { login: "alice" } }, issue: { number: pull.number }, installation: { id: installation.id } });
    expect(got[0]!.payload.issue.pull_request).toBeDefined();
    expect(got[2]!.payload.issue.pull_request).toBeUndefined();
  });

  it("a push to a pull's head branch is pull_request.synchronize and moves refs/pull/N/head", async () => {
    const from = receiver.received.length;
    const pull = adapters.issues.find((i) => i.pull)!;
    const commit = gh.store.pushAs(alice, adapters, [{ path: "variant.txt", data: "v2\n" }], { branch: "safe-lora/v1" });
    await gh.webhooks.settled();
    expect(since(from).map((d) => [d.event, d.payload.action ?? null])).toEqual([
      ["push", null],
      ["pull_request", "synchronize"],
    ]);
    expect(adapters.refs.get(`refs/pull/${pull.number}/head`)).toBe(commit.sha);
  });

  it("installation_repositories added and removed, and installation.deleted", async () => {
    const from = receiver.received.length;
    gh.store.changeInstallationRepos(installation, "added", [other]);
    gh.store.changeInstallationRepos(installation, "removed", [other]);
    gh.store.uninstall(installation);
    await gh.webhooks.settled();
    const got = since(from);
    expect(got.map((d) => [d.event, d.payload.action])).toEqual([
      ["installation_repositories", "added"],
      ["installation_repositories", "removed"],
      ["installation", "deleted"],
    ]);
    expect(got[0]!.payload.repositories_added.map((r: { full_name: string }) => r.full_name)).toEqual(["acme/other"]);
    expect(got[1]!.payload.repositories_removed.map((r: { full_name: string }) => r.full_name)).toEqual(["acme/other"]);
    expect(gh.webhooks.deliveries.every((d) => d.status === 202)).toBe(true);
  });

  it("every payload has the top-level fields of GitHub's own example of that event and action, and no others", () => {
    // Examples from organisations' repos carry `organization` (some `enterprise`), which the bot reads not; GitHub's
    // schema has `requester` (object or null) in installation events, though some of the examples leave it out.
    const optional = new Set(["organization", "enterprise", "requester"]);
    const shapes = receiver.received.map((delivery) => {
      const payload = JSON.parse(delivery.raw) as Record<string, unknown>;
      const name = String(delivery.headers["x-github-event"]);
      const model = example(name, (candidate) => candidate.action === payload.action);
      const keys = (value: object) => Object.keys(value).filter((key) => !optional.has(key)).sort();
      return { event: `${name}.${String(payload.action ?? "")}`, keys: keys(payload), expected: keys(model) };
    });
    expect(shapes.length).toBeGreaterThanOrEqual(8);
    for (const shape of shapes) expect({ event: shape.event, keys: shape.keys }).toEqual({ event: shape.event, keys: shape.expected });
  });
});
