import { commit, downloadFile, fileExists, HubApiError, listFiles, modelInfo, parseSafetensorsMetadata, whoAmI } from "@huggingface/hub";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalHub } from "../../src/local-hub/server.js";
import { folderFiles, seedRepo } from "../../src/local-hub/seed.js";
import type { User } from "../../src/local-hub/store.js";
import { SafetensorsFile } from "../../src/safetensors/safetensors-file.js";
import { goldenPath } from "../helpers/golden.js";
import { shardCheckpoint } from "../helpers/shard.js";
import { copyGolden } from "../helpers/fixture-copy.js";

let hub: LocalHub;
let member: User;
let outsider: User;
let bot: User;
const repo = { type: "model" as const, name: "acme/tiny-chat" };
const credentials = () => ({ hubUrl: hub.url, accessToken: member.token });

/** Collects webhook deliveries the local Hub sends. */
const received: Array<{ headers: Record<string, string | string[] | undefined>; body: Record<string, unknown> }> = [];
let receiver: Server;

beforeAll(async () => {
  hub = await new LocalHub().start();
  member = hub.store.addUser("alice");
  outsider = hub.store.addUser("mallory");
  bot = hub.store.addUser("safe-lora-bot");
  hub.store.addOrg("acme", [member.id]);
  await seedRepo(hub, repo.name, [
    ...(await folderFiles(goldenPath("llama-gqa-qv", "chat"))),
    { path: "README.md", data: "---\nbase_model: acme/tiny-base\nlicense: apache-2.0\n---\n# tiny\n" },
  ]);
  const sharded = copyGolden("llama-gqa-qv");
  await shardCheckpoint(sharded.base, 3);
  await seedRepo(hub, "acme/tiny-base", await folderFiles(sharded.base));

  receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      received.push({ headers: request.headers, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown> });
      response.writeHead(202).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  hub.webhooks.subscribe({ url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/hub`, secret: "s3cret", watched: [{ type: "org", name: "acme" }] });
});

afterAll(async () => {
  await hub.close();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
});

describe("reading with @huggingface/hub", () => {
  it("modelInfo at HEAD and at a percent-encoded revision, with sha, cardData, config and tags", async () => {
    const info = await modelInfo({ ...credentials(), name: repo.name, additionalFields: ["sha", "cardData", "config", "tags"] });
    expect(info.name).toBe(repo.name);
    expect(info.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(info.cardData).toMatchObject({ base_model: "acme/tiny-base", license: "apache-2.0" });
    expect(info.config).toMatchObject({ architectures: ["LlamaForCausalLM"], model_type: "llama" });
    expect(info.tags).toContain("base_model:finetune:acme/tiny-base");
    const pinned = await modelInfo({ ...credentials(), name: repo.name, revision: info.sha, additionalFields: ["sha"] });
    expect(pinned.sha).toBe(info.sha);
  });

  it("listFiles with git and LFS ids", async () => {
    const files = [];
    for await (const entry of listFiles({ ...credentials(), repo, recursive: true })) files.push(entry);
    const weights = files.find((file) => file.path === "model.safetensors")!;
    const bytes = readFileSync(goldenPath("llama-gqa-qv", "chat", "model.safetensors"));
    expect(weights.lfs?.oid).toBe(createHash("sha256").update(bytes).digest("hex"));
    expect(weights.size).toBe(bytes.byteLength);
    const config = files.find((file) => file.path === "config.json")!;
    expect(config.lfs).toBeUndefined();
    expect(config.oid).toMatch(/^[0-9a-f]{40}$/);
  });

  it("downloadFile (xet off) returns a lazy blob whose slices are range requests", async () => {
    hub.resetCounters();
    const blob = (await downloadFile({ ...credentials(), repo, path: "model.safetensors", xet: false }))!;
    const slice = new Uint8Array(await blob.slice(100, 164).arrayBuffer());
    expect(Buffer.from(slice).equals(readFileSync(goldenPath("llama-gqa-qv", "chat", "model.safetensors")).subarray(100, 164))).toBe(true);
    expect(hub.bytesServed(repo.name)).toBe(1 + 64); // the size probe (bytes=0-0) and the slice
    expect(hub.requests.map((r) => r.path)).toContain("/acme/tiny-chat/resolve/main/model.safetensors");
  });

  it("answers 404 EntryNotFound for a missing file, which downloadFile and fileExists understand", async () => {
    expect(await downloadFile({ ...credentials(), repo, path: "nope.bin", xet: false })).toBeNull();
    expect(await fileExists({ ...credentials(), repo, path: "nope.bin" })).toBe(false);
    expect(await fileExists({ ...credentials(), repo, path: "config.json" })).toBe(true);
  });

  it("parseSafetensorsMetadata reads single files and sharded checkpoints with the same headers our reader sees", async () => {
    const single = await parseSafetensorsMetadata({ ...credentials(), repo });
    expect(single.sharded).toBe(false);
    const ours = await SafetensorsFile.openPath(goldenPath("llama-gqa-qv", "chat", "model.safetensors"));
    expect(Object.keys(single.sharded ? {} : single.header).filter((k) => k !== "__metadata__").sort()).toEqual([...ours.header.tensors.keys()].sort());
    await ours.close();
    const sharded = await parseSafetensorsMetadata({ ...credentials(), repo: { type: "model", name: "acme/tiny-base" } });
    expect(sharded.sharded).toBe(true);
    if (sharded.sharded) expect(Object.keys(sharded.headers)).toHaveLength(3);
  });

  it("whoAmI names the user and their organisations", async () => {
    const me = await whoAmI({ hubUrl: hub.url, accessToken: member.token });
    expect(me).toMatchObject({ name: "alice", type: "user" });
    expect((me as { orgs: Array<{ name: string }> }).orgs.map((org) => org.name)).toEqual(["acme"]);
  });

  it("refuses a private repo as not found and a gated one with 403 for a token without access", async () => {
    await seedRepo(hub, "acme/secret", [{ path: "a.txt", data: "x" }], { private: true });
    await expect(modelInfo({ hubUrl: hub.url, accessToken: outsider.token, name: "acme/secret" })).rejects.toMatchObject({ statusCode: 404 });
    await expect(modelInfo({ hubUrl: hub.url, name: "acme/secret" })).rejects.toMatchObject({ statusCode: 401 });
    await seedRepo(hub, "acme/gated", [{ path: "w.safetensors", data: "0123456789" }], { gated: "manual" });
    await expect(modelInfo({ hubUrl: hub.url, accessToken: outsider.token, name: "acme/gated" })).resolves.toMatchObject({ gated: "manual" });
    await expect(downloadFile({ hubUrl: hub.url, accessToken: outsider.token, repo: { type: "model", name: "acme/gated" }, path: "w.safetensors", xet: false })).rejects.toMatchObject({ statusCode: 403 });
  });
});

describe("writing with @huggingface/hub", () => {
  let prNum: number;
  let prHead: string;

  it("opens a pull request with an LFS file and a regular file (useXet off)", async () => {
    received.length = 0;
    const weights = new Blob([readFileSync(goldenPath("llama-gqa-qv", "adapter", "adapter_model.safetensors"))]);
    const result = await commit({
      hubUrl: hub.url,
      accessToken: bot.token,
      repo,
      title: "Add Safe LoRA variant",
      description: "This pull request adds a Safe LoRA variant.",
      isPullRequest: true,
      useXet: false,
      operations: [
        { operation: "addOrUpdate", path: "safe-lora/adapter_model.safetensors", content: weights },
        { operation: "addOrUpdate", path: "safe-lora/README.md", content: new Blob(["# report\n"]) },
      ],
    });
    expect(result?.pullRequestUrl).toMatch(new RegExp(`${hub.url}/acme/tiny-chat/discussions/\\d+$`));
    prNum = Number(result!.pullRequestUrl!.split("/").at(-1));
    const stored = hub.store.repos.get(repo.name)!;
    prHead = stored.refs.get(`refs/pr/${prNum}`)!;
    expect(prHead).toBe(result!.commit.oid);
    expect(stored.commits.get(prHead)!.files.get("safe-lora/adapter_model.safetensors")!.lfs).not.toBeNull();
    expect(stored.commits.get(stored.refs.get("refs/heads/main")!)!.files.has("safe-lora/README.md")).toBe(false);
    // The new ref and the new pull request each send a webhook.
    await hub.webhooks.settled();
    expect(received.map((r) => (r.body.event as { scope: string }).scope).sort()).toEqual(["discussion", "repo.content"]);
  });

  it("adds a commit to the pull request's ref with parentCommit, and answers 412 to a stale one", async () => {
    const next = await commit({
      hubUrl: hub.url,
      accessToken: bot.token,
      repo,
      branch: `refs/pr/${prNum}`,
      parentCommit: prHead,
      title: "Re-patch",
      useXet: false,
      operations: [{ operation: "addOrUpdate", path: "safe-lora/README.md", content: new Blob(["# report v2\n"]) }],
    });
    expect(next?.commit.oid).not.toBe(prHead);
    const stale = commit({
      hubUrl: hub.url,
      accessToken: bot.token,
      repo,
      branch: `refs/pr/${prNum}`,
      parentCommit: prHead,
      title: "Re-patch on an old head",
      useXet: false,
      operations: [{ operation: "addOrUpdate", path: "safe-lora/README.md", content: new Blob(["# report v3\n"]) }],
    });
    await expect(stale).rejects.toBeInstanceOf(HubApiError);
    await expect(stale).rejects.toMatchObject({ statusCode: 412 });
  });

  it("lets only writers commit to main", async () => {
    const attempt = commit({ hubUrl: hub.url, accessToken: outsider.token, repo, title: "x", useXet: false, operations: [{ operation: "addOrUpdate", path: "x.txt", content: new Blob(["x"]) }] });
    await expect(attempt).rejects.toMatchObject({ statusCode: 403 });
  });
});

describe("discussions and webhooks", () => {
  const api = (path: string, token: string, body?: unknown) =>
    fetch(`${hub.url}/api/models/${repo.name}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it("comments, edits and closes, with events naming each author", async () => {
    const list = (await (await api("/discussions", member.token)).json()) as { discussions: Array<{ num: number; isPullRequest: boolean }> };
    const pr = list.discussions.find((d) => d.isPullRequest)!;
    received.length = 0;
    const posted = (await (await api(`/discussions/${pr.num}/comment`, member.token, { comment: "@safe-lora-bot repatch tau=0.4" })).json()) as { newMessage: { id: string } };
    const edited = await api(`/discussions/${pr.num}/comment/${posted.newMessage.id}/edit`, member.token, { content: "@safe-lora-bot repatch tau=0.45" });
    expect(edited.status).toBe(200);
    expect((await api(`/discussions/${pr.num}/comment/${posted.newMessage.id}/edit`, outsider.token, { content: "hijack" })).status).toBe(403);
    expect((await api(`/discussions/${pr.num}/status`, member.token, { status: "closed" })).status).toBe(200);
    const details = (await (await api(`/discussions/${pr.num}`, member.token)).json()) as {
      status: string;
      events: Array<{ type: string; author: { name: string }; data: { latest?: { raw: string } } }>;
    };
    expect(details.status).toBe("closed");
    expect(details.events.map((e) => [e.type, e.author.name])).toEqual([
      ["comment", "safe-lora-bot"],
      ["commit", "safe-lora-bot"],
      ["comment", "alice"],
      ["status-change", "alice"],
    ]);
    expect(details.events[2]!.data.latest!.raw).toBe("@safe-lora-bot repatch tau=0.45");
    await hub.webhooks.settled();
    expect(received.map((r) => `${(r.body.event as { scope: string }).scope}/${(r.body.event as { action: string }).action}`)).toEqual([
      "discussion.comment/create",
      "discussion.comment/update",
      "discussion/update",
    ]);
  });

  it("lists an organisation's members by username", async () => {
    const members = (await (await fetch(`${hub.url}/api/organizations/acme/members`)).json()) as Array<{ user: string }>;
    expect(members.map((m) => m.user)).toEqual(["alice"]);
  });

  /** Keys and value kinds, recursively: two payloads of one event have the same shape. */
  function shape(value: unknown): unknown {
    if (Array.isArray(value)) return value.length > 0 ? [shape(value[0])] : [];
    if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, shape(v)]));
    return value === null ? "null" : typeof value;
  }
  const sample = (name: string) => JSON.parse(readFileSync(new URL(`../fixtures/hub-payloads/${name}`, import.meta.url), "utf8")) as unknown;

  it("sends version-3 payloads in the shapes of the documented samples, with the secret in X-Webhook-Secret", async () => {
    received.length = 0;
    await commit({ hubUrl: hub.url, accessToken: member.token, repo, title: "update", useXet: false, operations: [{ operation: "addOrUpdate", path: "notes.txt", content: new Blob(["n"]) }] });
    const pr = await commit({ hubUrl: hub.url, accessToken: bot.token, repo, title: "Add Safe LoRA variant", description: "This pull request adds a Safe LoRA variant.", isPullRequest: true, useXet: false, operations: [{ operation: "addOrUpdate", path: "s.txt", content: new Blob(["s"]) }] });
    const num = Number(pr!.pullRequestUrl!.split("/").at(-1));
    await api(`/discussions/${num}/comment`, member.token, { comment: "@safe-lora-bot repatch tau=0.4" });
    await hub.webhooks.settled();
    expect(received.every((r) => r.headers["x-webhook-secret"] === "s3cret")).toBe(true);
    const push = received.find((r) => (r.body.event as { scope: string }).scope === "repo.content" && (r.body.updatedRefs as Array<{ ref: string }>)[0]!.ref === "refs/heads/main")!;
    expect(shape(push.body)).toEqual(shape(sample("repo-content-main-push.json")));
    const created = received.find((r) => (r.body.event as { scope: string }).scope === "discussion")!;
    expect(shape(created.body)).toEqual(shape(sample("discussion-pr-created.json")));
    const comment = received.find((r) => (r.body.event as { scope: string }).scope === "discussion.comment")!;
    expect(shape(comment.body)).toEqual(shape(sample("discussion-comment-on-pr.json")));
    expect(comment.body.comment).toMatchObject({ author: { id: member.id }, content: "@safe-lora-bot repatch tau=0.4" });
    // A new pull request's ref arrives as the recorded sample shows it: refs/pr/N with oldSha null.
    const prRef = received.find((r) => (r.body.updatedRefs as Array<{ ref: string }> | undefined)?.[0]?.ref.startsWith("refs/pr/"))!;
    expect((prRef.body.updatedRefs as Array<{ oldSha: unknown }>)[0]!.oldSha).toBeNull();
  });
});
