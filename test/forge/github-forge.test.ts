import { generateKeyPairSync } from "node:crypto";
import { RequestError } from "octokit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import { pullRequestMarker } from "../../src/forge/forge.js";
import { appInstallationTokens, githubError, githubWebUrl, type GithubAccess } from "../../src/github/github-access.js";
import { GithubForge, pullRequestBranch } from "../../src/github/github-forge.js";
import { formatLfsPointer, lfsPointerOf, lfsTracker, parseLfsPointer } from "../../src/github/lfs.js";
import { LocalGitHub } from "../../src/local-github/server.js";
import type { Account, Repo } from "../../src/local-github/store.js";
import { describeForgeContract, PEOPLE, type ForgeFixture } from "./forge-contract.js";

/** One App key for every fixture: generating an RSA key is the slowest part of a fixture otherwise. */
const KEYS = generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });

/** A local GitHub with the contract's people, the App installed on `acme` and on `carol`, and the forge acting as the App. */
async function localGithub(options: { maxBlobBytes?: number; fetch?: typeof fetch } = {}) {
  const github = await new LocalGitHub().start();
  const { store } = github;
  const users = new Map<string, Account>([PEOPLE.member, PEOPLE.outsider, PEOPLE.user].map((name) => [name, store.addUser(name)]));
  const org = store.addOrg(PEOPLE.org, [[users.get(PEOPLE.member)!, "write"]]);
  const app = store.addApp({ name: "Safe LoRA", publicKey: KEYS.publicKey });
  store.install(app, org);
  store.install(app, users.get(PEOPLE.user)!);
  const tokens = appInstallationTokens({ apiUrl: github.url }, { appId: app.id, privateKey: KEYS.privateKey });
  const access: GithubAccess = { apiUrl: github.url, webUrl: github.url, installationToken: (owner) => tokens.installationToken(owner), ...options };
  const forge = new GithubForge(access, { id: String(app.bot.id), name: app.bot.login });
  access.forgetInstallation = (owner) => tokens.forgetInstallation(owner);
  const repoOf = (name: string): Repo => store.repo(name)!;
  const issueOf = (name: string, num: number) => repoOf(name).issues.find((issue) => issue.number === num)!;
  return { github, store, users, org, app, tokens, access, forge, repoOf, issueOf };
}

async function githubFixture(): Promise<ForgeFixture> {
  const { github, store, users, forge, repoOf, issueOf } = await localGithub();
  const specs = (files: Record<string, string>) => Object.entries(files).map(([path, data]) => ({ path, data }));
  const alice = users.get(PEOPLE.member)!;
  return {
    forge,
    ...PEOPLE,
    async createRepo({ repo, files, private: isPrivate }) {
      const created = store.createRepo(repo, { private: isPrivate ?? false, files: specs(files) });
      return created.refs.get(`refs/heads/${created.defaultBranch}`)!;
    },
    async commitToMain({ repo, files }) {
      return store.pushAs(alice, repoOf(repo), specs(files)).sha;
    },
    async commitToPullRequest({ repo, num, files }) {
      return store.pushAs(alice, repoOf(repo), specs(files), { branch: issueOf(repo, num).pull!.head }).sha;
    },
    async openDiscussionAs({ repo, author, title, text }) {
      return store.openIssue(repoOf(repo), users.get(author)!, title, text).number;
    },
    async commentAs({ repo, discussion, author, text }) {
      return String(store.comment(repoOf(repo), issueOf(repo, discussion), users.get(author)!, text).id);
    },
    async discussion({ repo, num }) {
      const issue = issueOf(repo, num);
      const comments = repoOf(repo).comments.filter((comment) => comment.issueNumber === num);
      return {
        status: issue.state,
        comments: [{ id: `issue-${num}`, author: issue.user.login, text: issue.body ?? "" }, ...comments.map((c) => ({ id: String(c.id), author: c.user.login, text: c.body }))],
      };
    },
    close: () => github.close(),
  };
}

describeForgeContract("the GitHub forge on the local GitHub", githubFixture);

describe("the GitHub forge and Git LFS", () => {
  let world: Awaited<ReturnType<typeof localGithub>>;
  beforeAll(async () => {
    world = await localGithub();
  });
  afterAll(() => world.github.close());

  /** Bytes that differ at every offset, so a read from the wrong place cannot pass. */
  const tensorBytes = (size: number) => Buffer.from(Array.from({ length: size }, (_, i) => (i * 7 + (i >> 8)) % 251));

  it("reads an LFS-tracked file by range, from the object behind its pointer", async () => {
    const bytes = tensorBytes(10_000);
    world.store.createRepo("acme/lfs-read", {
      files: [
        { path: ".gitattributes", data: "*.safetensors filter=lfs diff=lfs merge=lfs -text\n" },
        { path: "a/adapter_model.safetensors", data: bytes, lfs: true },
      ],
    });
    const pinned = await world.forge.open({ repo: "acme/lfs-read", revision: "main" });
    const source = await pinned.openBytes("a/adapter_model.safetensors");
    expect(source.size).toBe(bytes.byteLength);
    expect(Buffer.from(await source.read(1234, 4321))).toEqual(bytes.subarray(1234, 1234 + 4321));
    expect(source.bytesRead).toBe(4321);
    await pinned.close();
  });

  it("reads by range from LFS storage that ignores ranges, and renews an expired download link", async () => {
    let refuseNext = true;
    let plainReads = 0;
    // LFS storage that answers every read whole (no Range), and refuses the first link as expired.
    const storage: typeof fetch = async (input, init) => {
      if (!String(input).includes("/_lfs/")) return fetch(input, init);
      if (refuseNext) {
        refuseNext = false;
        return new Response("expired", { status: 403 });
      }
      plainReads++;
      const headers = new Headers(init?.headers);
      headers.delete("range");
      return fetch(input, { ...init, headers });
    };
    const local = await localGithub({ fetch: storage });
    try {
      const bytes = tensorBytes(20_000);
      local.store.createRepo("acme/lfs-plain", { files: [{ path: "w.safetensors", data: bytes, lfs: true }] });
      const source = await (await local.forge.open({ repo: "acme/lfs-plain", revision: "main" })).openBytes("w.safetensors");
      const into = new Uint8Array(100);
      expect(Buffer.from(await source.read(15_000, 100, into))).toEqual(bytes.subarray(15_000, 15_100));
      expect(Buffer.from(await source.read(0, 8))).toEqual(bytes.subarray(0, 8));
      expect(plainReads).toBe(2);
    } finally {
      await local.github.close();
    }
  });

  it("commits tensors as LFS pointers when .gitattributes tracks them, with the uploaded object equal to the bytes", async () => {
    const repo = "acme/lfs-write";
    const created = world.store.createRepo(repo, { files: [{ path: ".gitattributes", data: "*.safetensors filter=lfs diff=lfs merge=lfs -text\n" }, { path: "README.md", data: "x" }] });
    const bytes = tensorBytes(5000);
    const { num, commit } = await world.forge.openPullRequest({
      repo,
      baseSha: created.refs.get("refs/heads/main")!,
      title: "Add Safe LoRA variant",
      description: pullRequestMarker("a"),
      files: [
        { path: "a/safe-lora/adapter_model.safetensors", content: new Blob([bytes]) },
        { path: "a/safe-lora/adapter_config.json", content: new Blob(['{"peft_type":"LORA"}']) },
      ],
    });
    const stored = world.repoOf(repo);
    const flat = stored.git.flatten(stored.git.commits.get(commit)!.tree);
    const blobOf = (path: string) => Buffer.from(stored.git.blobs.get(flat.get(path)!.sha)!);
    const pointer = parseLfsPointer(blobOf("a/safe-lora/adapter_model.safetensors"));
    expect(pointer).toEqual({ oid: lfsPointerOf(bytes).oid, size: bytes.byteLength });
    expect(Buffer.from(stored.lfs.get(pointer!.oid)!)).toEqual(bytes);
    // Files .gitattributes leaves alone are plain blobs.
    expect(blobOf("a/safe-lora/adapter_config.json").toString()).toBe('{"peft_type":"LORA"}');
    // And the forge reads its own commit back through LFS.
    const head = await world.forge.open({ repo, revision: world.forge.pullRequestHead(repo, num) });
    const source = await head.openBytes("a/safe-lora/adapter_model.safetensors");
    expect(Buffer.from(await source.read(0, bytes.byteLength))).toEqual(bytes);
    // A re-patch commits the new tensors as LFS pointers too.
    const again = tensorBytes(6000).reverse();
    const pushed = await world.forge.pushToPullRequest({ repo, num, parent: commit, title: "Re-patch", files: [{ path: "a/safe-lora/adapter_model.safetensors", content: new Blob([again]) }] });
    const pushedFlat = stored.git.flatten(stored.git.commits.get((pushed as { commit: string }).commit)!.tree);
    const repointed = parseLfsPointer(Buffer.from(stored.git.blobs.get(pushedFlat.get("a/safe-lora/adapter_model.safetensors")!.sha)!));
    expect(Buffer.from(stored.lfs.get(repointed!.oid)!)).toEqual(again);
  });
});

describe("the GitHub forge's pull request branches and pushes", () => {
  const marked = (folder: string) => `${pullRequestMarker(folder)}\nHello`;
  const files = (text: string) => [{ path: "safe-lora/x.txt", content: new Blob([text]) }];

  it("moves the branch of a closed pull request over, and gives a new one its own branch while an open one holds the name", async () => {
    const { forge, store, github, repoOf, issueOf } = await localGithub();
    try {
      const base = store.createRepo("acme/branches").refs.get("refs/heads/main")!;
      const first = await forge.openPullRequest({ repo: "acme/branches", baseSha: base, title: "t", description: marked("a b"), files: files("1") });
      expect(issueOf("acme/branches", first.num).pull!.head).toBe("safe-lora/a-b");
      // "a-b" sanitises to the same branch, which the open pull request holds.
      const second = await forge.openPullRequest({ repo: "acme/branches", baseSha: base, title: "t", description: marked("a-b"), files: files("2") });
      expect(issueOf("acme/branches", second.num).pull!.head).toBe(`safe-lora/a-b-${second.commit.slice(0, 7)}`);
      expect(repoOf("acme/branches").refs.get("refs/heads/safe-lora/a-b")).toBe(first.commit);
      await forge.closePullRequest({ repo: "acme/branches", num: first.num, comment: "Closed." });
      const third = await forge.openPullRequest({ repo: "acme/branches", baseSha: base, title: "t", description: marked("a b"), files: files("3") });
      expect(issueOf("acme/branches", third.num).pull!.head).toBe("safe-lora/a-b");
      expect(repoOf("acme/branches").refs.get("refs/heads/safe-lora/a-b")).toBe(third.commit);
    } finally {
      await github.close();
    }
  });

  it("answers stale when the head moves between reading it and moving the branch (no force push)", async () => {
    let onRefUpdate: (() => void) | null = null;
    // Runs a maintainer's push just before the forge's ref update reaches the local GitHub.
    const racing: typeof fetch = async (input, init) => {
      if (init?.method === "PATCH" && String(input).includes("/git/refs/heads/") && onRefUpdate) {
        onRefUpdate();
        onRefUpdate = null;
      }
      return fetch(input, init);
    };
    const { forge, store, github, users, repoOf, issueOf } = await localGithub({ fetch: racing });
    try {
      const base = store.createRepo("acme/race").refs.get("refs/heads/main")!;
      const { num, commit } = await forge.openPullRequest({ repo: "acme/race", baseSha: base, title: "t", description: marked("a"), files: files("1") });
      const branch = issueOf("acme/race", num).pull!.head;
      let theirs = "";
      onRefUpdate = () => {
        theirs = store.pushAs(users.get(PEOPLE.member)!, repoOf("acme/race"), [{ path: "notes.txt", data: "mine" }], { branch }).sha;
      };
      expect(await forge.pushToPullRequest({ repo: "acme/race", num, parent: commit, title: "Re-patch", files: files("2") })).toBe("stale");
      expect(repoOf("acme/race").refs.get(`refs/heads/${branch}`)).toBe(theirs);
    } finally {
      await github.close();
    }
  });
});

describe("the App's installations", () => {
  it("connects as the App's bot user, learnt with the App's JWT; a key GitHub does not know is a usage error", async () => {
    const { github, app, tokens, access } = await localGithub();
    try {
      const forge = await GithubForge.connect(access, tokens.app);
      expect(forge.bot).toMatchObject({ id: String(app.bot.id), name: "safe-lora[bot]" });
      const other = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
      const stranger = appInstallationTokens({ apiUrl: github.url }, { appId: app.id, privateKey: other.privateKey });
      const refused = await GithubForge.connect(access, stranger.app).catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: "usage", message: expect.stringMatching(/refused the App's JWT \(401\); check APP_ID and the private key/) });
      expect((refused as Error).message).not.toContain("PRIVATE KEY");
    } finally {
      await github.close();
    }
  });

  it("serves only owners that installed the App, and stops when it is uninstalled", async () => {
    const { forge, store, github, org, app } = await localGithub();
    try {
      store.createRepo("mallory/lora");
      expect(await forge.head("mallory/lora").catch((error: unknown) => error)).toMatchObject({ code: "hub-access", message: expect.stringMatching(/not installed on mallory/) });
      store.createRepo("acme/lora");
      expect((await forge.head("acme/lora")).repo).toBe("acme/lora");
      store.uninstall([...store.installations.values()].find((i) => i.account === org)!);
      expect(await forge.head("acme/lora").catch((error: unknown) => error)).toMatchObject({ code: "hub-access" });
      // Installed again (a new installation): served again.
      store.install(app, org);
      expect((await forge.head("acme/lora")).repo).toBe("acme/lora");
    } finally {
      await github.close();
    }
  });
});

describe("files too big for git data", () => {
  it("are refused with what to do: read outside LFS, or committed outside LFS", async () => {
    // A limit of 1000 bytes stands in for github.com's 100 MB.
    const { forge, store, github } = await localGithub({ maxBlobBytes: 1000 });
    try {
      const created = store.createRepo("acme/big", { files: [{ path: "a/adapter_model.safetensors", data: Buffer.alloc(2000, 1) }] });
      const pinned = await forge.open({ repo: "acme/big", revision: "main" });
      const refused = await pinned.openBytes("a/adapter_model.safetensors").catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: "limit-exceeded" });
      expect((refused as Error).message).toMatch(/is 2000 bytes and not in Git LFS; .* Track it with Git LFS/);
      const commit = forge.openPullRequest({
        repo: "acme/big",
        baseSha: created.refs.get("refs/heads/main")!,
        title: "Add Safe LoRA variant",
        description: pullRequestMarker("a"),
        files: [{ path: "a/safe-lora/adapter_model.safetensors", content: new Blob([Buffer.alloc(2000, 2)]) }],
      });
      await expect(commit).rejects.toMatchObject({ code: "limit-exceeded", message: expect.stringMatching(/track it with LFS in .gitattributes/) });
      // Nothing was opened.
      expect(store.repo("acme/big")!.issues).toEqual([]);
    } finally {
      await github.close();
    }
  });
});

describe("Git LFS pointers", () => {
  const oid = "a".repeat(64);

  it("reads a pointer git-lfs wrote, and formats one the same way", () => {
    const text = `version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize 12345\n`;
    expect(parseLfsPointer(new TextEncoder().encode(text))).toEqual({ oid, size: 12345 });
    expect(formatLfsPointer({ oid, size: 12345 })).toBe(text);
    // Extension lines are allowed by the spec.
    expect(parseLfsPointer(new TextEncoder().encode(`version https://git-lfs.github.com/spec/v1\next-0-foo sha256:${"b".repeat(64)}\noid sha256:${oid}\nsize 1\n`))).toEqual({ oid, size: 1 });
  });

  it("takes no ordinary file for a pointer", () => {
    const read = (text: string) => parseLfsPointer(new TextEncoder().encode(text));
    expect(read(`version https://git-lfs.github.com/spec/v2\noid sha256:${oid}\nsize 1\n`)).toBeNull();
    expect(read(`version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\n`)).toBeNull();
    expect(read(`version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize 1`)).toBeNull();
    expect(read(`version https://git-lfs.github.com/spec/v1\noid md5:${oid}\nsize 1\n`)).toBeNull();
    expect(read(`version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize 01\n`)).toBeNull();
    expect(parseLfsPointer(new Uint8Array(2000))).toBeNull();
    expect(lfsPointerOf(new TextEncoder().encode("abc"))).toEqual({ oid: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", size: 3 });
  });

  it("knows which paths .gitattributes sends to LFS: the last matching line decides", () => {
    const tracked = lfsTracker(["# tensors", "*.safetensors filter=lfs diff=lfs merge=lfs -text", "/models/*.bin filter=lfs", "small.safetensors -filter", ""].join("\n"));
    expect(tracked("adapter_model.safetensors")).toBe(true);
    expect(tracked("a/b/adapter_model.safetensors")).toBe(true);
    expect(tracked("models/w.bin")).toBe(true);
    expect(tracked("other/models/w.bin")).toBe(false);
    expect(tracked("a/small.safetensors")).toBe(false);
    expect(tracked("adapter_config.json")).toBe(false);
    expect(lfsTracker("")("x.safetensors")).toBe(false);
  });
});

describe("GitHub's web host", () => {
  it("is found from the REST API's URL: github.com, GitHub Enterprise, or the same origin", () => {
    expect(githubWebUrl("https://api.github.com/")).toBe("https://github.com");
    expect(githubWebUrl("https://ghe.example.com/api/v3")).toBe("https://ghe.example.com");
    expect(githubWebUrl("http://127.0.0.1:4000")).toBe("http://127.0.0.1:4000");
  });
});

describe("the GitHub forge's branches", () => {
  it("names one branch per adapter folder, valid as a git ref", () => {
    expect(pullRequestBranch(".")).toBe("safe-lora/root");
    expect(pullRequestBranch("*")).toBe("safe-lora/all");
    expect(pullRequestBranch("adapters/chat")).toBe("safe-lora/adapters/chat");
    expect(pullRequestBranch("my adapter~1")).toBe("safe-lora/my-adapter-1");
    expect(pullRequestBranch(".hidden/x.lock")).toBe("safe-lora/hidden/x");
    expect(pullRequestBranch("a..b/c:d")).toBe("safe-lora/a.b/c-d");
    for (const folder of ["a", "a b", "x@{1}", "..", "...", "a/.", "weird?*[name]\\"]) {
      const branch = pullRequestBranch(folder);
      expect(branch, folder).toMatch(/^safe-lora\/[^\s~^:?*[\\]+$/);
      expect(branch, folder).not.toMatch(/\.\.|@\{|\/\.|\.lock$|\/$|\.$/);
    }
  });
});

describe("the GitHub forge's errors", () => {
  const access = { apiUrl: "https://api.github.example" };
  const requestError = (status: number, message: string, headers: Record<string, string> = {}) =>
    new RequestError(message, status, {
      request: { method: "GET", url: "https://api.github.example/repos/acme/x", headers: { authorization: "token ghs_secret123" } },
      response: { status, url: "https://api.github.example/repos/acme/x", headers, data: { message } },
    });
  const translated = (error: unknown, action: string | null = null) => githubError({ error, repo: "acme/x", action, access }) as SafeLoraError;

  it("gives the Hub's codes: 404 not found, 401 and 403 access, 5xx and rate limits unavailable", () => {
    expect(translated(requestError(404, "Not Found")).code).toBe("hub-not-found");
    expect(translated(requestError(401, "Bad credentials")).code).toBe("hub-access");
    expect(translated(requestError(403, "Resource not accessible by integration")).code).toBe("hub-access");
    expect(translated(requestError(502, "Bad Gateway")).code).toBe("hub-unavailable");
    expect(translated(requestError(500, "fetch failed")).code).toBe("hub-unavailable");
    expect(translated(requestError(403, "API rate limit exceeded", { "x-ratelimit-remaining": "0" })).code).toBe("hub-unavailable");
    expect(translated(requestError(429, "Too many requests")).code).toBe("hub-unavailable");
  });

  it("says what the App lacks for a refused write, and never shows the token", () => {
    const error = translated(requestError(403, "Resource not accessible by integration"), "open a pull request");
    expect(error.message).toBe(
      "acme/x: GitHub did not let the App open a pull request (403: Resource not accessible by integration); its installation needs contents, pull requests and issues write permission on the repo",
    );
    for (const status of [401, 403, 404, 500]) expect(translated(requestError(status, "x"), "comment").message).not.toContain("ghs_secret123");
  });

  it("passes a SafeLoraError as it is, and a bug as it is", () => {
    const own = new SafeLoraError("mine", "usage");
    expect(translated(own)).toBe(own);
    const bug = new TypeError("undefined is not a function");
    expect(githubError({ error: bug, repo: "acme/x", action: null, access })).toBe(bug);
  });
});

describe("trying a variant from a GitHub pull request", () => {
  it("clones, fetches the pull request's ref and loads the folder, with quotes that cannot break out", async () => {
    const { forge, github } = await localGithub();
    try {
      const tried = forge.tryVariant({ repo: "acme/adapter", subfolder: `a/it's "x"`, aligned: "org/chat", num: 7 });
      expect(tried.language).toBe("bash");
      expect(tried.beforeMerging).toContain(`git clone ${github.url}/acme/adapter.git && cd adapter`);
      expect(tried.beforeMerging).toContain("git fetch origin refs/pull/7/head && git checkout FETCH_HEAD");
      expect(tried.beforeMerging).toContain(`PeftModel.from_pretrained(model, "a/it's \\"x\\"")`);
      expect(forge.tryVariant({ repo: "acme/adapter", subfolder: "s", aligned: "o/c", num: null }).beforeMerging).toContain("git fetch origin 'refs/pull/<number of this pull request>/head'");
    } finally {
      await github.close();
    }
  });
});
