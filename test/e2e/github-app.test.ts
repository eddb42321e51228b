import { generateKeyPairSync } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { scanJobFor } from "../../src/bot/scan-job.js";
import { folderFiles } from "../../src/local-hub/seed.js";
import { LocalGitHub } from "../../src/local-github/server.js";
import type { Account, GitHubAppRecord, Repo } from "../../src/local-github/store.js";
import { readAllTensors } from "../helpers/tensors.js";
import { goldenPath } from "../helpers/golden.js";
import { BotWorld } from "../helpers/bot-world.js";
import { LocalOctokit } from "../local-github/helpers.js";
import { FullFinetuneReport } from "../../src/report/full-finetune-schema.js";
import { runCli } from "../helpers/cli.js";
import { FINETUNE_CARD, seedFinetuneFamily } from "../helpers/finetune-family.js";

// Issue 11: the same patch flow for an adapter kept in a GitHub repository, through the GitHub App. GitHub is the
// project's local stand-in (src/local-github), the base and aligned models come from the local Hub, and the bot runs
// in this process with the App's variables, as `serve` would.
const WEBHOOK_SECRET = "github-app-e2e-secret";

let world: BotWorld;
let github: LocalGitHub;
let app: GitHubAppRecord;
let alice: Account;
let repo: Repo;
let base: string;

beforeEach(async () => {
  world = await BotWorld.create();
  github = await new LocalGitHub().start();
  const keys = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
  app = github.store.addApp({ name: "Safe LoRA", publicKey: keys.publicKey, events: ["push", "pull_request", "issue_comment", "installation", "installation_repositories"] });
  alice = github.store.addUser("alice");
  // The App must be installed somewhere before the bot reads its bot account with an installation's token.
  repo = github.store.createRepo("alice/chat-lora", { files: [{ path: "README.md", data: "---\nlicense: apache-2.0\n---\n# An adapter repo\n" }] });
  github.store.install(app, alice, [repo]);
  const bot = await world.startBot({ APP_ID: String(app.id), PRIVATE_KEY: keys.privateKey, WEBHOOK_SECRET, GITHUB_API_URL: github.url });
  base = `http://127.0.0.1:${bot.port}`;
  github.webhooks.subscribe(app, `${base}/api/github/webhooks`, WEBHOOK_SECRET);
}, 60_000);

afterEach(async () => {
  await world.close();
  await github.close();
});

/** The golden adapter's files (its generated README left out), the weights as LFS objects when `lfs`. */
async function adapterFiles(options: { lfs: boolean }) {
  const files = (await folderFiles(goldenPath(world.caseName, "adapter"))).filter((file) => file.path !== "README.md");
  return files.map((file) => ({ path: file.path, data: readFileSync((file as { diskPath: string }).diskPath), lfs: options.lfs && file.path.endsWith(".safetensors") }));
}

async function idle(): Promise<void> {
  await github.webhooks.settled();
  await world.idle(60_000);
  await github.webhooks.settled();
}

const octokit = () => new LocalOctokit({ baseUrl: github.url, auth: alice.token });

/** A file of a branch, through the contents API (raw), or through LFS when git holds a pointer. */
async function fileAt(branch: string, path: string): Promise<Buffer> {
  const { data } = await octokit().request("GET /repos/{owner}/{repo}/contents/{path}", { owner: "alice", repo: "chat-lora", path, ref: branch, headers: { accept: "application/vnd.github.raw+json" } });
  const bytes = Buffer.from(data as unknown as ArrayBuffer);
  const pointer = /^version https:\/\/git-lfs\.github\.com\/spec\/v1\noid sha256:([0-9a-f]{64})\n/.exec(bytes.toString("utf8"));
  return pointer ? repo.lfs.get(pointer[1]!)! : bytes;
}

async function expectEngineOutput(branch: string): Promise<void> {
  const path = join(world.work, "variant.safetensors");
  writeFileSync(path, await fileAt(branch, "safe-lora/adapter_model.safetensors"));
  const ours = await readAllTensors(path);
  const official = await readAllTensors(goldenPath(world.caseName, "expected-threshold-0.33", "adapter_model.safetensors"));
  for (const [name, tensor] of official.tensors) {
    const mine = ours.tensors.get(name)!;
    expect(Math.max(...Array.from(mine.values(), (v, i) => Math.abs(v - tensor.values()[i]!))), name).toBeLessThan(1e-6);
  }
}

describe.each([
  { name: "plain git blobs", lfs: false },
  { name: "Git LFS (.gitattributes tracks *.safetensors)", lfs: true },
])("an adapter pushed to a GitHub repo, its weights as $name", ({ lfs }) => {
  it("gets one pull request on safe-lora/…, one commit with the variant (the engine's tensors); a second push adds a commit, not a PR", async () => {
    if (lfs) github.store.pushAs(alice, repo, [{ path: ".gitattributes", data: "*.safetensors filter=lfs diff=lfs merge=lfs -text\n" }]);
    github.store.pushAs(alice, repo, await adapterFiles({ lfs }));
    await idle();

    const pulls = (await octokit().request("GET /repos/{owner}/{repo}/pulls", { owner: "alice", repo: "chat-lora", state: "all" })).data;
    expect(pulls).toHaveLength(1);
    const [pull] = pulls;
    expect(pull).toMatchObject({ state: "open", user: { login: app.bot.login }, base: { ref: "main" } });
    expect(pull!.head.ref).toMatch(/^safe-lora\//);
    const files = (await octokit().request("GET /repos/{owner}/{repo}/pulls/{pull_number}/files", { owner: "alice", repo: "chat-lora", pull_number: pull!.number })).data.map((f) => f.filename);
    expect(files).toEqual(expect.arrayContaining(["safe-lora/adapter_model.safetensors", "safe-lora/adapter_config.json", "safe-lora/README.md", "safe-lora/safe-lora-report.json"]));
    // One commit, on top of the default branch's head: blobs, a tree on main's, the commit, the branch's ref.
    const before = repo.refs.get(`refs/heads/${pull!.head.ref}`)!;
    expect(repo.git.commits.get(before)!.parents).toEqual([repo.refs.get("refs/heads/main")]);
    await expectEngineOutput(pull!.head.ref);
    // With LFS tracking the variant's tensors are LFS objects behind a pointer, as the repo's other tensors.
    const tree = (await octokit().request("GET /repos/{owner}/{repo}/contents/{path}", { owner: "alice", repo: "chat-lora", path: "safe-lora/adapter_model.safetensors", ref: pull!.head.ref })).data as { size: number };
    if (lfs) expect(tree.size).toBeLessThan(200);
    else expect(tree.size).toBeGreaterThan(1000);

    // A second push (its adapter config changed): a new commit on the same branch, no second pull request.
    github.store.pushAs(alice, repo, (await adapterFiles({ lfs })).map((file) => (file.path === "adapter_config.json" ? { ...file, data: Buffer.from(JSON.stringify({ ...JSON.parse(file.data.toString("utf8")), lora_dropout: 0.07 })) } : file)));
    await idle();
    const after = (await octokit().request("GET /repos/{owner}/{repo}/pulls", { owner: "alice", repo: "chat-lora", state: "all" })).data;
    expect(after).toHaveLength(1);
    const head = repo.refs.get(`refs/heads/${pull!.head.ref}`);
    expect(head).not.toBe(before);
    expect(repo.git.commits.get(head!)!.parents).toEqual([before]);
  });
});

describe("comments on the bot's pull request in a GitHub repo", () => {
  it("a collaborator's `/safe-lora repatch top-k=3` adds a commit; an outsider's is refused and runs nothing", async () => {
    github.store.pushAs(alice, repo, await adapterFiles({ lfs: false }));
    await idle();
    const [pull] = (await octokit().request("GET /repos/{owner}/{repo}/pulls", { owner: "alice", repo: "chat-lora" })).data;
    const branch = `refs/heads/${pull!.head.ref}`;
    const first = repo.refs.get(branch);
    const issue = repo.issues.find((i) => i.number === pull!.number)!;
    const jobsBefore = (await world.bot!.context.queue.recent(100)).length;

    // mallory can read the public repo but has no write access: refused, with an answer, and no patch job.
    const mallory = github.store.addUser("mallory");
    github.store.comment(repo, issue, mallory, "/safe-lora repatch top-k=3");
    await idle();
    expect(repo.refs.get(branch)).toBe(first);
    const jobs = (await world.bot!.context.queue.recent(100)).slice(0, (await world.bot!.context.queue.recent(100)).length - jobsBefore);
    expect(jobs.map((job) => job.kind)).toEqual(["command"]);
    expect(jobs[0]!.result).toEqual({ refused: "mallory" });
    const answers = () => repo.comments.filter((c) => c.user.id === app.bot.id).map((c) => c.body);
    expect(answers()).toContainEqual(expect.stringMatching(/^Thanks for asking, @mallory\. Only members of `alice`/));

    // alice owns the repo (write access): the re-patch runs and commits top-k:3 on the same branch.
    github.store.comment(repo, issue, alice, "/safe-lora repatch top-k=3");
    await idle();
    const second = repo.refs.get(branch);
    expect(second).not.toBe(first);
    expect(repo.git.commits.get(second!)!.parents).toEqual([first]);
    const report = JSON.parse((await fileAt(pull!.head.ref, "safe-lora/safe-lora-report.json")).toString("utf8")) as { selection: { mode: string; value: number } };
    expect(report.selection).toMatchObject({ mode: "top-k", value: 3 });
    expect(answers()).toContainEqual(expect.stringMatching(/^Done: committed `[0-9a-f]{12}` — `\.` patched with `top-k:3`/));
    // Both commands were acknowledged at once with the App's 👀 on the comment.
    const commands = repo.comments.filter((c) => c.body === "/safe-lora repatch top-k=3");
    expect(commands).toHaveLength(2);
    for (const command of commands) {
      expect(command.reactions.map((reaction) => [reaction.user.login, reaction.content])).toEqual([[app.bot.login, "eyes"]]);
    }
    expect((await octokit().request("GET /repos/{owner}/{repo}/pulls", { owner: "alice", repo: "chat-lora", state: "all" })).data).toHaveLength(1);
  });
});

describe("an installation removed", () => {
  it("refuses the repo's jobs from then on, without a call to GitHub for the repo", async () => {
    const head = github.store.pushAs(alice, repo, [{ path: "notes.md", data: "x" }]).sha;
    const installation = github.store.installationFor(app, repo)!;
    github.store.uninstall(installation);
    await github.webhooks.settled();
    const mark = github.requests.length;
    // A job of the repo still in the queue (stored before the removal, or by a reconciliation scan).
    const { job } = await world.bot!.context.queue.enqueue(scanJobFor({ forge: "github", repo: "alice/chat-lora", sha: head, private: false, reason: "push" }));
    await idle();
    expect(await world.bot!.context.queue.get(job.id)).toMatchObject({ state: "done", result: { outcome: "refused", code: "not-installed" } });
    expect(github.requests.slice(mark).filter((request) => request.path.includes("/repos/alice/chat-lora"))).toEqual([]);
  });
});

describe("a full fine-tune pushed to a GitHub repo, its weights in Git LFS", () => {
  it("gets one pull request whose safe-lora/ holds the sharded variant, as LFS objects, equal to the CLI's", async () => {
    const models = await seedFinetuneFamily(world);
    const files = ["model.safetensors", "config.json"].map((name) => ({ path: name, data: readFileSync(join(models.finetuned, name)), lfs: name.endsWith(".safetensors") }));
    github.store.pushAs(alice, repo, [{ path: ".gitattributes", data: "*.safetensors filter=lfs diff=lfs merge=lfs -text\n" }]);
    github.store.pushAs(alice, repo, [...files, { path: "README.md", data: FINETUNE_CARD }]);
    await idle();

    const pulls = (await octokit().request("GET /repos/{owner}/{repo}/pulls", { owner: "alice", repo: "chat-lora", state: "all" })).data;
    expect(pulls).toHaveLength(1);
    const branch = pulls[0]!.head.ref;
    const report = FullFinetuneReport.parse(JSON.parse((await fileAt(branch, "safe-lora/safe-lora-report.json")).toString("utf8")));
    expect(report).toMatchObject({ kind: "full-finetune", moduleCount: 14, inputs: { finetuned: { location: expect.stringMatching(/^alice\/chat-lora@[0-9a-f]{12}$/) }, aligned: { location: "test-org/tiny-chat" } } });
    // The shard is an LFS object behind a pointer, as the repo's own tensors are, and the same bytes as a CLI run makes.
    const tree = (await octokit().request("GET /repos/{owner}/{repo}/contents/{path}", { owner: "alice", repo: "chat-lora", path: "safe-lora/model-00001-of-00001.safetensors", ref: branch })).data as { size: number };
    expect(tree.size).toBeLessThan(200);
    const out = join(world.work, "cli-variant");
    expect((await runCli(["patch", "--finetune", models.finetuned, "--base", models.base, "--aligned", models.aligned, "--select", "threshold:0.33", "--out", out])).code).toBe(0);
    for (const name of ["model-00001-of-00001.safetensors", "model.safetensors.index.json", "config.json"]) expect(await fileAt(branch, `safe-lora/${name}`), name).toEqual(readFileSync(join(out, name)));
  });
});
