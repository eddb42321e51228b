import { createHash, sign } from "node:crypto";
import { appFromJwt, AuthError } from "../../src/local-github/auth.js";
import { App, Octokit } from "octokit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalGitHub } from "../../src/local-github/server.js";
import type { Account, GitHubAppRecord, Installation, Repo } from "../../src/local-github/store.js";
import { appKeys, LocalOctokit, refusal } from "./helpers.js";

const { privateKey, publicKey } = appKeys();
const WEIGHTS = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));

let gh: LocalGitHub;
let app: GitHubAppRecord;
let installation: Installation;
let alice: Account;
let mallory: Account;
let adapters: Repo;
let bot: Octokit;

const octokitFor = (token?: string) => new LocalOctokit({ baseUrl: gh.url, ...(token ? { auth: token } : {}) });
const appClient = () => new App({ appId: app.id, privateKey, Octokit: LocalOctokit.defaults({ baseUrl: gh.url }) });

beforeAll(async () => {
  gh = await new LocalGitHub().start();
  alice = gh.store.addUser("alice");
  mallory = gh.store.addUser("mallory");
  const acme = gh.store.addOrg("acme", [alice]);
  gh.store.addOrg("elsewhere");
  adapters = gh.store.createRepo("acme/adapters", {
    private: true,
    files: [
      { path: "README.md", data: "# adapters\n" },
      { path: "lora/adapter_config.json", data: '{"r": 8}\n' },
      { path: "lora/adapter_model.safetensors", data: WEIGHTS, lfs: true },
    ],
  });
  gh.store.createRepo("acme/not-installed", { private: true });
  gh.store.createRepo("elsewhere/public-thing");
  app = gh.store.addApp({ name: "Safe LoRA", publicKey });
  installation = gh.store.install(app, acme, [adapters]);
  bot = (await appClient().getInstallationOctokit(installation.id)) as unknown as Octokit;
});

afterAll(async () => {
  await gh.close();
});

describe("App auth: JWT and installation tokens", () => {
  it("GET /app and /app/installations with the App's JWT", async () => {
    const client = appClient();
    const { data } = await client.octokit.request("GET /app");
    expect(data).toMatchObject({ id: app.id, slug: "safe-lora", name: "Safe LoRA" });
    const installations = await client.octokit.request("GET /app/installations");
    expect(installations.data.map((i) => [i.id, i.account?.login, i.repository_selection])).toEqual([[installation.id, "acme", "selected"]]);
    const byRepo = await client.octokit.request("GET /repos/{owner}/{repo}/installation", { owner: "acme", repo: "adapters" });
    expect(byRepo.data.id).toBe(installation.id);
    expect((await refusal(client.octokit.request("GET /repos/{owner}/{repo}/installation", { owner: "acme", repo: "not-installed" }))).status).toBe(404);
  });

  it("an access token has the installation's permissions and reaches its repos only", async () => {
    const client = appClient();
    const { data } = await client.octokit.request("POST /app/installations/{installation_id}/access_tokens", { installation_id: installation.id });
    expect(data.token).toMatch(/^ghs_/);
    expect(Date.parse(data.expires_at)).toBeGreaterThan(Date.now());
    expect(data.permissions).toMatchObject({ contents: "write", pull_requests: "write", issues: "write" });
    expect(data.repository_selection).toBe("selected");
    const listed = await bot.request("GET /installation/repositories");
    expect(listed.data.repositories.map((r) => r.full_name)).toEqual(["acme/adapters"]);
    expect((await refusal(bot.request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "not-installed" }))).status).toBe(404);
  });

  it("refuses a JWT signed by another key, a JWT on repo endpoints, a bad token, and hides private repos from strangers", async () => {
    const other = appKeys();
    const forged = new App({ appId: app.id, privateKey: other.privateKey, Octokit: LocalOctokit.defaults({ baseUrl: gh.url }) });
    expect((await refusal(forged.octokit.request("GET /app"))).status).toBe(401);
    const { token: jwt } = (await appClient().octokit.auth({ type: "app" })) as { token: string };
    expect((await refusal(octokitFor(jwt).request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "adapters" }))).status).toBe(403);
    expect(await refusal(octokitFor("ghs_not-a-token").request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "adapters" }))).toEqual({ status: 401, message: "Bad credentials" });
    expect((await refusal(octokitFor().request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "adapters" }))).status).toBe(404);
    expect((await refusal(octokitFor(mallory.token).request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "adapters" }))).status).toBe(404);
    const publicRepo = await octokitFor().request("GET /repos/{owner}/{repo}", { owner: "elsewhere", repo: "public-thing" });
    expect(publicRepo.data.private).toBe(false);
  });
});

describe("App JWT claims, as GitHub checks them", () => {
  const jwt = (claims: Record<string, unknown>, key = privateKey) => {
    const head = `${Buffer.from(JSON.stringify({ alg: "RS256", typ: "JWT" })).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
    return `${head}.${sign("RSA-SHA256", Buffer.from(head), key).toString("base64url")}`;
  };
  const now = Math.floor(Date.now() / 1000);

  it("accepts iss = the App id with exp at most ten minutes ahead", () => {
    expect(appFromJwt(gh.store, jwt({ iat: now - 30, exp: now + 540, iss: app.id }), now).id).toBe(app.id);
    expect(appFromJwt(gh.store, jwt({ iat: now - 30, exp: now + 540, iss: String(app.id) }), now).id).toBe(app.id);
  });

  it("refuses an expired JWT, one too far ahead, another App's id and garbage", () => {
    expect(() => appFromJwt(gh.store, jwt({ iat: now - 1200, exp: now - 600, iss: app.id }), now)).toThrow(AuthError);
    expect(() => appFromJwt(gh.store, jwt({ iat: now, exp: now + 3600, iss: app.id }), now)).toThrow(/too far in the future/);
    expect(() => appFromJwt(gh.store, jwt({ iat: now, exp: now + 300, iss: 999999 }), now)).toThrow(/Integration not found/);
    expect(() => appFromJwt(gh.store, "not.a.jwt", now)).toThrow(/could not be decoded/);
  });

  it("a token asked for one repository reaches only that one", async () => {
    gh.store.changeInstallationRepos(installation, "added", [gh.store.repo("acme/not-installed")!]);
    try {
      const { data } = await appClient().octokit.request("POST /app/installations/{installation_id}/access_tokens", { installation_id: installation.id, repositories: ["not-installed"] });
      expect(data.repository_selection).toBe("selected");
      expect(data.repositories?.map((r) => r.full_name)).toEqual(["acme/not-installed"]);
      const narrow = octokitFor(data.token);
      expect((await narrow.rest.repos.get({ owner: "acme", repo: "not-installed" })).status).toBe(200);
      expect((await refusal(narrow.rest.repos.get({ owner: "acme", repo: "adapters" }))).status).toBe(404);
    } finally {
      gh.store.changeInstallationRepos(installation, "removed", [gh.store.repo("acme/not-installed")!]);
    }
  });
});

describe("repos, contents and git data", () => {
  it("GET /users/{username} for a user and for the App's bot", async () => {
    expect((await bot.rest.users.getByUsername({ username: "alice" })).data).toMatchObject({ login: "alice", id: alice.id, type: "User" });
    expect((await bot.rest.users.getByUsername({ username: "safe-lora[bot]" })).data).toMatchObject({ id: app.bot.id, type: "Bot" });
    expect((await refusal(bot.rest.users.getByUsername({ username: "nobody" }))).status).toBe(404);
  });

  it("GET /repos/{o}/{r}", async () => {
    const { data } = await bot.rest.repos.get({ owner: "acme", repo: "adapters" });
    expect(data).toMatchObject({ id: adapters.id, full_name: "acme/adapters", default_branch: "main", private: true, owner: { login: "acme", type: "Organization" } });
  });

  it("contents: a file with base64 content, a directory listing, an LFS file as its pointer, raw media", async () => {
    const file = await bot.rest.repos.getContent({ owner: "acme", repo: "adapters", path: "lora/adapter_config.json" });
    if (Array.isArray(file.data) || file.data.type !== "file") throw new Error("expected a file");
    expect(Buffer.from(file.data.content, "base64").toString("utf8")).toBe('{"r": 8}\n');
    expect(file.data).toMatchObject({ encoding: "base64", size: 9, name: "adapter_config.json", path: "lora/adapter_config.json" });
    expect(file.data.sha).toBe(createHash("sha1").update("blob 9\0").update('{"r": 8}\n').digest("hex"));

    const dir = await bot.rest.repos.getContent({ owner: "acme", repo: "adapters", path: "lora" });
    if (!Array.isArray(dir.data)) throw new Error("expected a listing");
    expect(dir.data.map((e) => [e.path, e.type])).toEqual([
      ["lora/adapter_config.json", "file"],
      ["lora/adapter_model.safetensors", "file"],
    ]);

    const pointer = await bot.rest.repos.getContent({ owner: "acme", repo: "adapters", path: "lora/adapter_model.safetensors" });
    if (Array.isArray(pointer.data) || pointer.data.type !== "file") throw new Error("expected a file");
    const sha256 = createHash("sha256").update(WEIGHTS).digest("hex");
    expect(Buffer.from(pointer.data.content, "base64").toString("utf8")).toBe(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${WEIGHTS.byteLength}\n`);

    const raw = await bot.request("GET /repos/{owner}/{repo}/contents/{path}", { owner: "acme", repo: "adapters", path: "README.md", mediaType: { format: "raw" } });
    expect(Buffer.from(raw.data as unknown as ArrayBuffer).toString("utf8")).toBe("# adapters\n");
    expect((await refusal(bot.rest.repos.getContent({ owner: "acme", repo: "adapters", path: "nope.txt" }))).status).toBe(404);
  });

  it("contents: the root listing; a file over 1 MB has encoding none and is read with the raw media type", async () => {
    const root = await bot.rest.repos.getContent({ owner: "acme", repo: "adapters", path: "" });
    if (!Array.isArray(root.data)) throw new Error("expected a listing");
    expect(root.data.map((e) => [e.name, e.type])).toEqual([
      ["README.md", "file"],
      ["lora", "dir"],
    ]);
    const big = Buffer.alloc(1024 * 1024 + 1, 0x61);
    gh.store.pushAs(alice, adapters, [{ path: "big.txt", data: big }], { branch: "big" });
    const file = await bot.rest.repos.getContent({ owner: "acme", repo: "adapters", path: "big.txt", ref: "big" });
    if (Array.isArray(file.data) || file.data.type !== "file") throw new Error("expected a file");
    expect([file.data.encoding, file.data.content, file.data.size]).toEqual(["none", "", big.byteLength]);
    const raw = await bot.request("GET /repos/{owner}/{repo}/contents/{path}", { owner: "acme", repo: "adapters", path: "big.txt", ref: "big", mediaType: { format: "raw" } });
    expect(Buffer.from(raw.data as unknown as ArrayBuffer).equals(big)).toBe(true);
  });

  it("a body that does not match the endpoint's schema is 422 naming the field", async () => {
    const refused = await refusal(bot.request("POST /repos/{owner}/{repo}/git/refs", { owner: "acme", repo: "adapters", ref: "heads/no-prefix", sha: "0".repeat(40) }));
    expect(refused.status).toBe(422);
    expect(refused.message).toMatch(/^Invalid request: ref must start with refs\//);
  });

  it("a commit through git data: blob, tree on a base tree, commit, ref update; a non-fast-forward update is 422", async () => {
    const ref = await bot.rest.git.getRef({ owner: "acme", repo: "adapters", ref: "heads/main" });
    const head = await bot.rest.git.getCommit({ owner: "acme", repo: "adapters", commit_sha: ref.data.object.sha });
    const blob = await bot.rest.git.createBlob({ owner: "acme", repo: "adapters", content: Buffer.from("patched\n").toString("base64"), encoding: "base64" });
    expect((await bot.rest.git.getBlob({ owner: "acme", repo: "adapters", file_sha: blob.data.sha })).data.content.replace(/\n/g, "")).toBe(Buffer.from("patched\n").toString("base64"));
    const tree = await bot.rest.git.createTree({
      owner: "acme",
      repo: "adapters",
      base_tree: head.data.tree.sha,
      tree: [
        { path: "variant/adapter_config.json", mode: "100644", type: "blob", sha: blob.data.sha },
        { path: "variant/README.md", mode: "100644", type: "blob", content: "# variant\n" },
      ],
    });
    const commit = await bot.rest.git.createCommit({ owner: "acme", repo: "adapters", message: "Add variant", tree: tree.data.sha, parents: [head.data.sha] });
    expect(commit.data.parents.map((p) => p.sha)).toEqual([head.data.sha]);

    const branch = await bot.rest.git.createRef({ owner: "acme", repo: "adapters", ref: "refs/heads/safe-lora/variant", sha: commit.data.sha });
    expect(branch.status).toBe(201);
    expect((await refusal(bot.rest.git.createRef({ owner: "acme", repo: "adapters", ref: "refs/heads/safe-lora/variant", sha: commit.data.sha }))).message).toBe("Reference already exists");

    const listing = await bot.rest.git.getTree({ owner: "acme", repo: "adapters", tree_sha: commit.data.sha, recursive: "1" });
    expect(listing.data.tree.filter((e) => e.type === "blob").map((e) => e.path)).toEqual([
      "README.md",
      "lora/adapter_config.json",
      "lora/adapter_model.safetensors",
      "variant/README.md",
      "variant/adapter_config.json",
    ]);
    const matching = await bot.rest.git.listMatchingRefs({ owner: "acme", repo: "adapters", ref: "heads/safe-lora/" });
    expect(matching.data.map((r) => r.ref)).toEqual(["refs/heads/safe-lora/variant"]);

    // A sibling of the branch head is not a fast-forward of it.
    const sibling = await bot.rest.git.createCommit({ owner: "acme", repo: "adapters", message: "Other", tree: head.data.tree.sha, parents: [head.data.sha] });
    const refused = await refusal(bot.rest.git.updateRef({ owner: "acme", repo: "adapters", ref: "heads/safe-lora/variant", sha: sibling.data.sha, force: false }));
    expect(refused).toEqual({ status: 422, message: "Update is not a fast forward" });
    const child = await bot.rest.git.createCommit({ owner: "acme", repo: "adapters", message: "Child", tree: tree.data.sha, parents: [commit.data.sha] });
    const moved = await bot.rest.git.updateRef({ owner: "acme", repo: "adapters", ref: "heads/safe-lora/variant", sha: child.data.sha, force: false });
    expect(moved.data.object.sha).toBe(child.data.sha);
    const forced = await bot.rest.git.updateRef({ owner: "acme", repo: "adapters", ref: "heads/safe-lora/variant", sha: sibling.data.sha, force: true });
    expect(forced.data.object.sha).toBe(sibling.data.sha);
  });

  it("refuses writes to a reader and to a repo outside the installation", async () => {
    expect((await refusal(octokitFor(mallory.token).rest.git.createBlob({ owner: "elsewhere", repo: "public-thing", content: "x" }))).status).toBe(403);
    expect((await refusal(bot.rest.git.createBlob({ owner: "acme", repo: "not-installed", content: "x" }))).status).toBe(404);
  });
});

describe("pulls, issues, comments, reactions, permissions", () => {
  it("opens a pull from a branch, finds it by head, lists its files, edits and closes it", async () => {
    const commit = gh.store.pushAs(alice, adapters, [{ path: "lora/adapter_config.json", data: '{"r": 16}\n' }, { path: "NOTES.md", data: "notes\n" }], { branch: "alice/tweak" });
    const created = await bot.rest.pulls.create({ owner: "acme", repo: "adapters", title: "Safe LoRA variant", head: "alice/tweak", base: "main", body: "body" });
    expect(created.data).toMatchObject({ state: "open", title: "Safe LoRA variant", head: { ref: "alice/tweak", sha: commit.sha }, base: { ref: "main" } });
    const number = created.data.number;
    expect(adapters.refs.get(`refs/pull/${number}/head`)).toBe(commit.sha);
    const headRef = await bot.rest.git.getRef({ owner: "acme", repo: "adapters", ref: `pull/${number}/head` });
    expect(headRef.data.object.sha).toBe(commit.sha);

    const again = await refusal(bot.rest.pulls.create({ owner: "acme", repo: "adapters", title: "again", head: "alice/tweak", base: "main" }));
    expect(again.status).toBe(422);

    const found = await bot.rest.pulls.list({ owner: "acme", repo: "adapters", state: "open", head: "acme:alice/tweak" });
    expect(found.data.map((p) => p.number)).toEqual([number]);
    expect((await bot.rest.pulls.list({ owner: "acme", repo: "adapters", head: "acme:nothing" })).data).toEqual([]);

    const files = await bot.rest.pulls.listFiles({ owner: "acme", repo: "adapters", pull_number: number });
    expect(files.data.map((f) => [f.filename, f.status])).toEqual([
      ["NOTES.md", "added"],
      ["lora/adapter_config.json", "modified"],
    ]);

    await bot.rest.pulls.update({ owner: "acme", repo: "adapters", pull_number: number, title: "Renamed", body: "new body" });
    const closed = await bot.rest.pulls.update({ owner: "acme", repo: "adapters", pull_number: number, state: "closed" });
    expect(closed.data).toMatchObject({ title: "Renamed", body: "new body", state: "closed" });
    expect((await bot.rest.pulls.get({ owner: "acme", repo: "adapters", pull_number: number })).data.state).toBe("closed");
    expect((await bot.rest.pulls.list({ owner: "acme", repo: "adapters", state: "closed" })).data.map((p) => p.number)).toContain(number);
  });

  it("lists pulls newest first, a page at a time with a Link header", async () => {
    const numbers = [];
    for (const branch of ["p1", "p2", "p3"]) {
      gh.store.pushAs(alice, adapters, [{ path: `${branch}.txt`, data: branch }], { branch });
      numbers.push((await bot.rest.pulls.create({ owner: "acme", repo: "adapters", title: branch, head: branch, base: "main" })).data.number);
    }
    const first = await bot.rest.pulls.list({ owner: "acme", repo: "adapters", per_page: 2 });
    expect(first.data.map((p) => p.number)).toEqual([numbers[2], numbers[1]]);
    expect(first.headers.link).toMatch(/page=2>; rel="next"/);
    const all = await bot.paginate(bot.rest.pulls.list, { owner: "acme", repo: "adapters", per_page: 2 });
    expect(all.map((p) => p.number)).toEqual([...numbers].reverse());
  });

  it("comments: create, get, edit, list with pagination; reactions 201 then 200", async () => {
    const issue = await bot.rest.issues.create({ owner: "acme", repo: "adapters", title: "Safe LoRA notice", body: "hello" });
    expect(issue.data).toMatchObject({ state: "open", title: "Safe LoRA notice", user: { login: "safe-lora[bot]", type: "Bot" } });
    expect(issue.data.pull_request).toBeUndefined();
    const made = [];
    for (let i = 0; i < 5; i++) made.push((await bot.rest.issues.createComment({ owner: "acme", repo: "adapters", issue_number: issue.data.number, body: `comment ${i}` })).data.id);
    const page = await bot.rest.issues.listComments({ owner: "acme", repo: "adapters", issue_number: issue.data.number, per_page: 2 });
    expect(page.data.map((c) => c.body)).toEqual(["comment 0", "comment 1"]);
    expect(page.headers.link).toContain('rel="next"');
    const all = await bot.paginate(bot.rest.issues.listComments, { owner: "acme", repo: "adapters", issue_number: issue.data.number, per_page: 2 });
    expect(all.map((c) => c.id)).toEqual(made);

    const edited = await bot.rest.issues.updateComment({ owner: "acme", repo: "adapters", comment_id: made[0]!, body: "edited" });
    expect(edited.data.body).toBe("edited");
    expect((await bot.rest.issues.getComment({ owner: "acme", repo: "adapters", comment_id: made[0]! })).data.body).toBe("edited");
    expect((await refusal(octokitFor(mallory.token).rest.issues.updateComment({ owner: "acme", repo: "adapters", comment_id: made[0]!, body: "x" }))).status).toBe(404);

    const first = await bot.rest.reactions.createForIssueComment({ owner: "acme", repo: "adapters", comment_id: made[1]!, content: "eyes" });
    const second = await bot.rest.reactions.createForIssueComment({ owner: "acme", repo: "adapters", comment_id: made[1]!, content: "eyes" });
    expect([first.status, second.status, second.data.id]).toEqual([201, 200, first.data.id]);
    expect((await bot.rest.issues.getComment({ owner: "acme", repo: "adapters", comment_id: made[1]! })).data.reactions).toMatchObject({ total_count: 1, eyes: 1 });

    const closed = await bot.rest.issues.update({ owner: "acme", repo: "adapters", issue_number: issue.data.number, state: "closed" });
    expect(closed.data.state).toBe("closed");
    expect(closed.data.closed_by?.login).toBe(app.bot.login);
  });

  it("lists a repo's issues (and pulls, marked pull_request) by state and creator, newest first", async () => {
    const opened = await bot.rest.issues.create({ owner: "acme", repo: "adapters", title: "Another notice" });
    const byAlice = await octokitFor(alice.token).rest.issues.create({ owner: "acme", repo: "adapters", title: "A question" });
    const open = (await bot.rest.issues.listForRepo({ owner: "acme", repo: "adapters", state: "open" })).data;
    expect(open.map((i) => i.number).slice(0, 2)).toEqual([byAlice.data.number, opened.data.number]);
    expect(open.every((i) => i.state === "open")).toBe(true);
    const mine = (await bot.rest.issues.listForRepo({ owner: "acme", repo: "adapters", state: "all", creator: app.bot.login })).data;
    expect(mine.map((i) => i.user?.login)).toEqual(mine.map(() => app.bot.login));
    expect(mine.map((i) => i.number)).toContain(opened.data.number);
    expect(mine.map((i) => i.number)).not.toContain(byAlice.data.number);
    expect((await refusal(octokitFor(mallory.token).rest.issues.listForRepo({ owner: "acme", repo: "adapters" }))).status).toBe(404);
  });

  it("a collaborator's permission: owner org member write, stranger none", async () => {
    const member = await bot.rest.repos.getCollaboratorPermissionLevel({ owner: "acme", repo: "adapters", username: "alice" });
    expect(member.data).toMatchObject({ permission: "write", user: { login: "alice" } });
    const stranger = await bot.rest.repos.getCollaboratorPermissionLevel({ owner: "acme", repo: "adapters", username: "mallory" });
    expect(stranger.data.permission).toBe("none");
  });

  it("a collaborator's role: maintain reads as permission write with role_name maintain, and lets them write", async () => {
    const carol = gh.store.addUser("carol");
    gh.store.addCollaborator(adapters, carol, "maintain");
    const level = await bot.rest.repos.getCollaboratorPermissionLevel({ owner: "acme", repo: "adapters", username: "carol" });
    expect(level.data).toMatchObject({ permission: "write", role_name: "maintain" });
    expect((await octokitFor(carol.token).rest.git.createBlob({ owner: "acme", repo: "adapters", content: "c" })).status).toBe(201);
    expect((await refusal(octokitFor().rest.issues.create({ owner: "elsewhere", repo: "public-thing", title: "anonymous" }))).status).toBe(401);
  });
});
