import { createHash } from "node:crypto";
import { App, Octokit } from "octokit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lfsPointer } from "../../src/local-hub/store.js";
import { LocalGitHub } from "../../src/local-github/server.js";
import type { Account, Repo } from "../../src/local-github/store.js";
import { appKeys, LocalOctokit, refusal } from "./helpers.js";

const { privateKey, publicKey } = appKeys();
const WEIGHTS = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
/** A small file limit, so that refusing "over 100 MB" is tested without 100 MB. */
const MAX_FILE = 2000;

let gh: LocalGitHub;
let mallory: Account;
let repo: Repo;
let bot: Octokit;
let token: string;

interface BatchObject {
  oid: string;
  size: number;
  actions?: Record<string, { href: string; header: Record<string, string>; expires_in: number }>;
  error?: { code: number; message: string };
}

/** The batch API as git-lfs calls it: Basic auth with x-access-token, LFS media types. */
async function batch(operation: "download" | "upload", objects: Array<{ oid: string; size: number }>, auth: string | null = `x-access-token:${token}`, name = "acme/weights") {
  const response = await fetch(`${gh.url}/${name}.git/info/lfs/objects/batch`, {
    method: "POST",
    headers: { Accept: "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json", ...(auth ? { Authorization: `Basic ${Buffer.from(auth).toString("base64")}` } : {}) },
    body: JSON.stringify({ operation, transfers: ["basic"], objects, hash_algo: "sha256" }),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as { transfer: string; objects: BatchObject[]; message?: string } };
}

beforeAll(async () => {
  gh = await new LocalGitHub({ maxFileBytes: MAX_FILE }).start();
  mallory = gh.store.addUser("mallory");
  const acme = gh.store.addOrg("acme");
  repo = gh.store.createRepo("acme/weights", {
    private: true,
    files: [
      { path: ".gitattributes", data: "*.safetensors filter=lfs diff=lfs merge=lfs -text\n" },
      { path: "adapter_model.safetensors", data: WEIGHTS, lfs: true },
      { path: "big.txt", data: "x".repeat(MAX_FILE + 1) },
    ],
  });
  const app = gh.store.addApp({ name: "Safe LoRA", publicKey });
  const installation = gh.store.install(app, acme, "all");
  const client = new App({ appId: app.id, privateKey, Octokit: LocalOctokit.defaults({ baseUrl: gh.url }) });
  bot = (await client.getInstallationOctokit(installation.id)) as unknown as Octokit;
  token = ((await client.octokit.request("POST /app/installations/{installation_id}/access_tokens", { installation_id: installation.id })).data).token;
});

afterAll(() => gh.close());

describe("Git LFS batch API and transfers", () => {
  it("download: the batch gives an href and header; full and ranged reads (206, suffix, 416)", async () => {
    const { status, headers, body } = await batch("download", [{ oid: sha256(WEIGHTS), size: WEIGHTS.byteLength }]);
    expect(status).toBe(200);
    expect(headers.get("content-type")).toBe("application/vnd.git-lfs+json");
    const download = body.objects[0]!.actions!.download!;
    expect(download.expires_in).toBeGreaterThan(0);

    const full = await fetch(download.href, { headers: download.header });
    expect(full.status).toBe(200);
    expect(Buffer.from(await full.arrayBuffer()).equals(WEIGHTS)).toBe(true);

    const part = await fetch(download.href, { headers: { ...download.header, Range: "bytes=100-199" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 100-199/${WEIGHTS.byteLength}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(WEIGHTS.subarray(100, 200))).toBe(true);

    const tail = await fetch(download.href, { headers: { ...download.header, Range: "bytes=-8" } });
    expect(Buffer.from(await tail.arrayBuffer()).equals(WEIGHTS.subarray(-8))).toBe(true);

    const beyond = await fetch(download.href, { headers: { ...download.header, Range: `bytes=${WEIGHTS.byteLength}-` } });
    expect(beyond.status).toBe(416);
    await beyond.arrayBuffer();

    const unsigned = await fetch(download.href);
    expect(unsigned.status).toBe(403);
    await unsigned.arrayBuffer();
  });

  it("a missing object is an error entry; a stranger gets 404; no credentials get 401 with LFS-Authenticate", async () => {
    const missing = await batch("download", [{ oid: "a".repeat(64), size: 3 }]);
    expect(missing.body.objects[0]).toMatchObject({ oid: "a".repeat(64), error: { code: 404 } });
    expect((await batch("download", [{ oid: sha256(WEIGHTS), size: WEIGHTS.byteLength }], `mallory:${mallory.token}`)).status).toBe(404);
    const anonymous = await batch("download", [{ oid: sha256(WEIGHTS), size: WEIGHTS.byteLength }], null);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("lfs-authenticate")).toMatch(/^Basic/);
  });

  it("upload round trip: batch, PUT (checked against oid and size), pointer committed, contents shows the pointer, download reads it back", async () => {
    const data = Buffer.from("a patched adapter's bytes\n".repeat(50));
    const object = { oid: sha256(data), size: data.byteLength };
    const planned = await batch("upload", [object]);
    const upload = planned.body.objects[0]!.actions!.upload!;
    const verify = planned.body.objects[0]!.actions!.verify!;
    const verifyCall = () => fetch(verify.href, { method: "POST", headers: { "Content-Type": "application/vnd.git-lfs+json", ...verify.header }, body: JSON.stringify(object) }).then((r) => r.status);
    expect(await verifyCall()).toBe(404);

    const wrong = await fetch(upload.href, { method: "PUT", headers: upload.header, body: Buffer.alloc(data.byteLength, 1) });
    expect(wrong.status).toBe(422);
    await wrong.arrayBuffer();
    const right = await fetch(upload.href, { method: "PUT", headers: upload.header, body: data });
    expect(right.status).toBe(200);
    await right.arrayBuffer();
    expect(await verifyCall()).toBe(200);
    expect((await batch("upload", [object])).body.objects[0]!.actions).toBeUndefined();

    const head = await bot.rest.git.getRef({ owner: "acme", repo: "weights", ref: "heads/main" });
    const base = await bot.rest.git.getCommit({ owner: "acme", repo: "weights", commit_sha: head.data.object.sha });
    const tree = await bot.rest.git.createTree({ owner: "acme", repo: "weights", base_tree: base.data.tree.sha, tree: [{ path: "variant/adapter_model.safetensors", mode: "100644", type: "blob", content: lfsPointer(object.oid, object.size).toString("utf8") }] });
    const commit = await bot.rest.git.createCommit({ owner: "acme", repo: "weights", message: "variant", tree: tree.data.sha, parents: [base.data.sha] });
    await bot.rest.git.updateRef({ owner: "acme", repo: "weights", ref: "heads/main", sha: commit.data.sha });

    const contents = await bot.rest.repos.getContent({ owner: "acme", repo: "weights", path: "variant/adapter_model.safetensors" });
    if (Array.isArray(contents.data) || contents.data.type !== "file") throw new Error("expected a file");
    expect(Buffer.from(contents.data.content, "base64").equals(lfsPointer(object.oid, object.size))).toBe(true);

    const download = (await batch("download", [object])).body.objects[0]!.actions!.download!;
    expect(Buffer.from(await (await fetch(download.href, { headers: download.header })).arrayBuffer()).equals(data)).toBe(true);
  });
});

describe("size limits, as GitHub's", () => {
  it("a blob over the file limit is refused; a file over it is not served by contents (403 too large)", async () => {
    const refused = await refusal(bot.rest.git.createBlob({ owner: "acme", repo: "weights", content: "y".repeat(MAX_FILE + 1) }));
    expect(refused.status).toBe(422);
    expect(refused.message).toMatch(/LFS/);
    expect((await bot.rest.git.createBlob({ owner: "acme", repo: "weights", content: "y".repeat(MAX_FILE) })).status).toBe(201);
    const tooLarge = await refusal(bot.rest.repos.getContent({ owner: "acme", repo: "weights", path: "big.txt" }));
    expect(tooLarge.status).toBe(403);
    expect(tooLarge.message).toMatch(/too large/);
  });

  it("a request body over the limit is refused with 413 before it is parsed", async () => {
    const response = await fetch(`${gh.url}/repos/acme/weights/issues`, { method: "POST", headers: { Authorization: `token ${token}` }, body: JSON.stringify({ title: "x", body: "z".repeat(2 * 1024 * 1024) }) });
    expect(response.status).toBe(413);
    expect(((await response.json()) as { message: string }).message).toMatch(/limit/);
  });
});
