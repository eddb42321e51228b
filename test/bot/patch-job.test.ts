import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCommand } from "../../src/bot/command-job.js";
import { repatchGroup, runPatch, type PatchPayload } from "../../src/bot/patch-job.js";
import { jobHandler } from "../../src/bot/run-job.js";
import { SafeLoraError } from "../../src/errors.js";
import { readPullRequestMarker } from "../../src/forge/forge.js";
import { LocalHub } from "../../src/local-hub/server.js";
import { seedReferencePair, seedRepo } from "../../src/local-hub/seed.js";
import { GOLDEN_DIR } from "../helpers/golden.js";
import { until } from "../helpers/until.js";
import { botTest, goldenAdapter, MEMBER, REPO, type BotTest } from "./bot-test.js";

/** The base and aligned models live on a (local) Hub; the adapter repo on the in-memory forge. */
let hub: LocalHub;
beforeAll(async () => {
  hub = await new LocalHub().start();
  await seedReferencePair(hub, GOLDEN_DIR, "llama-gqa-qv");
  await seedRepo(hub, "rival/secret-chat", [{ path: "README.md", data: "private" }], { private: true });
});
afterAll(() => hub.close());

let t: BotTest;
beforeEach(async () => {
  t = await botTest({ hub: { hubUrl: hub.url } });
});
afterEach(() => t.close());

const patch = (payload: Partial<PatchPayload> = {}) => runPatch(t.job, { repo: REPO, folder: ".", sha: null, selection: null, operator: null, command: null, ...payload });
const commit = (files: Record<string, string | Uint8Array | null>) => t.forge.commitFiles({ repo: REPO, files, author: MEMBER });
const pullRequest = (num: number) => t.forge.discussionOf(REPO, num);
const headFile = (num: number, path: string) => t.forge.fileAt({ repo: REPO, revision: t.forge.pullRequestHead(REPO, num), path });
const botCommits = (num: number) => {
  const repo = t.forge.repoOf(REPO);
  const commits = [];
  for (let sha = repo.refs.get(t.forge.pullRequestHead(REPO, num)); sha && sha !== repo.refs.get("main"); sha = repo.commits.get(sha)!.parent ?? undefined) commits.push(repo.commits.get(sha)!);
  return commits.filter((c) => c.author === t.forge.bot.name);
};
/** The acknowledgement a command job would have posted on discussion `num`, for the patch job to edit. */
const acknowledged = async (num: number) => {
  const commentId = t.forge.commentAs({ repo: REPO, discussion: num, author: MEMBER, text: "@safe-lora-bot repatch" });
  const ackId = await t.forge.comment({ repo: REPO, discussion: num, text: "On it" });
  return { command: { discussion: num, commentId, ackId }, reply: () => t.forge.botComments(REPO, num).find((c) => c.id === ackId)!.text };
};

describe("the patch job: publishing", () => {
  it("opens a pull request with the variant, described from the files its head holds, in the forge's words", async () => {
    commit(goldenAdapter());
    const outcome = await patch();
    expect(outcome).toMatchObject({ outcome: "committed", pr: 1, projected: 4, modules: 8, created: true });
    const pr = pullRequest(1);
    expect(pr).toMatchObject({ isPullRequest: true, author: t.forge.bot.name, status: "open", title: "Add Safe LoRA variant" });
    for (const path of ["adapter_model.safetensors", "adapter_config.json", "README.md", "similarity.svg", "safe-lora-report.json"]) expect(headFile(1, `safe-lora/${path}`)).not.toBeNull();
    const description = pr.comments[0]!.text;
    expect(readPullRequestMarker(description)).toBe(".");
    expect(description).toContain("**What this pull request changes** (6 files; nothing else in the repo):");
    // The "try it" snippet is the forge's: this one names its pull request heads refs/pull/N/head.
    expect(description).toContain(`git fetch origin ${t.forge.pullRequestHead(REPO, 1)}`);
    expect(description).not.toContain("refs/pr/");
  });

  it("changes nothing when asked again for the same adapter, models and selection", async () => {
    commit(goldenAdapter());
    await patch();
    expect(await patch()).toEqual({ outcome: "unchanged", pr: 1, reason: "same record" });
    expect(botCommits(1)).toHaveLength(1);
  });

  it("takes another operator for another patch: the record, report, card and description say which ran", async () => {
    commit(goldenAdapter());
    await patch();
    const { command } = await acknowledged(1);
    const outcome = await patch({ operator: { kind: "subspace", rank: 4 }, command });
    expect(outcome).toMatchObject({ outcome: "committed", pr: 1, created: false });
    const report = JSON.parse(headFile(1, "safe-lora/safe-lora-report.json")!) as { operator: { kind: string; setting: string }; record: { operator: string } };
    expect(report.operator).toMatchObject({ kind: "subspace", setting: "subspace:4" });
    expect(report.record.operator).toMatch(/^P = U_k U_kᵀ.*k = 4; lora_B ← P·lora_B$/);
    expect(headFile(1, "safe-lora/README.md")!).toMatch(/^safe-lora patch .* --operator subspace:4$/m);
    expect(pullRequest(1).comments[0]!.text).toContain("| Operator | `subspace:4` — P = U_k U_kᵀ");
    const again = await acknowledged(1);
    expect(await patch({ operator: { kind: "subspace", rank: 4 }, command: again.command })).toMatchObject({ outcome: "unchanged" });
  });

  it("commits a re-patch to the same pull request, and edits the acknowledgement with the result", async () => {
    commit(goldenAdapter());
    await patch();
    const { command, reply } = await acknowledged(1);
    const outcome = await patch({ selection: { mode: "top-k", value: 2 }, command });
    expect(outcome).toMatchObject({ outcome: "committed", pr: 1, projected: 2, created: false });
    expect(botCommits(1)).toHaveLength(2);
    expect(reply()).toMatch(/^Done: committed `[0-9a-f]{12}` — `\.` patched with `top-k:2`, 2 of 8 modules projected\.$/);
    expect(pullRequest(1).comments[0]!.text).toContain("| Modules projected | 2 / 8 |");
    const again = await acknowledged(1);
    expect(await patch({ selection: { mode: "top-k", value: 2 }, command: again.command })).toMatchObject({ outcome: "unchanged" });
    expect(again.reply()).toMatch(/^Nothing to do: this pull request already holds `\.` patched with `top-k:2`/);
  });

  it("looks again when the pull request's head moved while it committed, and commits on the new head", async () => {
    commit(goldenAdapter());
    await patch();
    const { command } = await acknowledged(1);
    t.forge.beforeNext("pushToPullRequest", () => t.forge.commitFiles({ repo: REPO, pullRequest: 1, files: { "notes.md": "a maintainer's note" }, author: MEMBER }));
    expect(await patch({ selection: { mode: "top-k", value: 2 }, command })).toMatchObject({ outcome: "committed", created: false });
    expect(headFile(1, "notes.md")).toBe("a maintainer's note");
    expect(JSON.parse(headFile(1, "safe-lora/safe-lora-report.json")!)).toMatchObject({ selection: { mode: "top-k", value: 2 } });
  });

  it("puts a variant of a nested adapter in that folder's safe-lora/", async () => {
    commit(goldenAdapter("adapters/summaries"));
    expect(await patch({ folder: "adapters/summaries" })).toMatchObject({ outcome: "committed", pr: 1 });
    expect(pullRequest(1).title).toBe("Add Safe LoRA variant (adapters/summaries)");
    expect(headFile(1, "adapters/summaries/safe-lora/safe-lora-report.json")).not.toBeNull();
  });
});

describe("the patch job: deciding not to", () => {
  it("skips a repo that turned it off, a stopped folder and a folder with no adapter, telling a command why", async () => {
    commit({ ...goldenAdapter(), "safe-lora.yaml": "enabled: false\n" });
    const num = t.forge.openDiscussionAs({ repo: REPO, author: MEMBER, title: "Q", text: "…" });
    const disabled = await acknowledged(num);
    expect(await patch({ command: disabled.command })).toEqual({ outcome: "skipped", reason: "disabled" });
    expect(disabled.reply()).toBe("Safe LoRA is turned off for this repo (`enabled: false` in `safe-lora.yaml`).");

    commit({ "safe-lora.yaml": null });
    const empty = await acknowledged(num);
    expect(await patch({ folder: "nothing/here", command: empty.command })).toEqual({ outcome: "skipped", reason: "no adapter in this folder" });
    expect(empty.reply()).toMatch(/^There is no adapter in `nothing\/here` at `[0-9a-f]{12}`\.$/);

    await t.context.memory.stop({ forge: "hub", repo: REPO, folder: "." });
    const stopped = await acknowledged(num);
    expect(await patch({ command: stopped.command })).toEqual({ outcome: "skipped", reason: "stopped" });
    expect(stopped.reply()).toBe("I stopped covering `.` as asked; comment `@safe-lora-bot start` to undo that.");
    expect(t.forge.repoOf(REPO).discussions.filter((d) => d.isPullRequest)).toEqual([]);
  });

  it("explains an invalid safe-lora.yaml once, in a notice, and to the command that asked", async () => {
    commit({ ...goldenAdapter(), "safe-lora.yaml": "limits: {maxModules: lots}\n" });
    const num = t.forge.openDiscussionAs({ repo: REPO, author: MEMBER, title: "Q", text: "…" });
    const { command, reply } = await acknowledged(num);
    const outcome = await patch({ command });
    expect(outcome).toMatchObject({ outcome: "skipped", reason: "invalid safe-lora.yaml", notice: 2 });
    expect(pullRequest(2)).toMatchObject({ title: "safe-lora.yaml is invalid", author: t.forge.bot.name });
    expect(reply()).toMatch(/^I cannot act until `safe-lora.yaml` is fixed: `limits.maxModules` \(safe-lora.yaml, line 1\)/);
    await patch();
    expect(t.forge.repoOf(REPO).discussions).toHaveLength(2);
  });

  it("does not reopen a pull request that was closed for the same adapter files", async () => {
    commit(goldenAdapter());
    await patch();
    await t.forge.closePullRequest({ repo: REPO, num: 1, comment: "No thanks." });
    expect(await patch()).toEqual({ outcome: "skipped", reason: "pull request #1 for these adapter files was closed; not reopening it" });
    // A command is a person asking: it opens a new one.
    const num = t.forge.openDiscussionAs({ repo: REPO, author: MEMBER, title: "Q", text: "…" });
    expect(await patch({ command: (await acknowledged(num)).command })).toMatchObject({ outcome: "committed", created: true, pr: 3 });
  });

  it("does nothing when the variant of these adapter files was merged", async () => {
    commit(goldenAdapter());
    await patch();
    t.forge.mergePullRequest({ repo: REPO, num: 1 });
    expect(await patch()).toEqual({ outcome: "skipped", reason: "a variant of these adapter files is already on main" });
  });
});

describe("the patch job: refusals and failures", () => {
  const weightless = () => {
    const { "adapter_model.safetensors": _weights, ...config } = goldenAdapter();
    return config;
  };

  it("refuses an adapter it cannot patch with one notice per adapter version, and closes it once a patch succeeds", async () => {
    commit(weightless());
    const refused = await patch();
    expect(refused).toMatchObject({ outcome: "refused", code: "missing-file", notice: 1 });
    const notice = pullRequest(1);
    expect(notice).toMatchObject({ isPullRequest: false, title: "Safe LoRA could not patch this adapter", status: "open" });
    expect(notice.comments[0]!.text).toContain("I could not make a Safe LoRA variant of the adapter at the root of this repo:");
    expect(await patch()).toMatchObject({ outcome: "refused", notice: 1 });
    expect(t.forge.repoOf(REPO).discussions).toHaveLength(1);

    commit(goldenAdapter());
    expect(await patch()).toMatchObject({ outcome: "committed", pr: 2 });
    expect(notice.status).toBe("closed");
    expect(notice.comments.at(-1)!.text).toMatch(/^Done: pull request #2 holds a Safe LoRA variant of `\.` \(commit `[0-9a-f]{12}`, `threshold:0\.33`, 4 of 8 modules projected\)\. Closing this discussion\.$/);
  });

  it("answers a refusal a command asked for on that command's comment, with no notice", async () => {
    commit(weightless());
    const num = t.forge.openDiscussionAs({ repo: REPO, author: MEMBER, title: "Q", text: "…" });
    const { command, reply } = await acknowledged(num);
    expect(await patch({ command })).toMatchObject({ outcome: "refused", code: "missing-file", notice: num });
    expect(reply()).toMatch(/^I could not patch `\.`:\n\n```/);
    expect(t.forge.repoOf(REPO).discussions).toHaveLength(1);
  });

  it("refuses a pair it may not read: another owner's private model", async () => {
    commit({ ...goldenAdapter(), "safe-lora.yaml": "pair: {base: test-org/llama-gqa-qv-base, aligned: rival/secret-chat}\n" });
    const refused = await patch();
    expect(refused).toMatchObject({ outcome: "refused", code: "model-not-allowed" });
    expect((refused as { reason: string }).reason).toMatch(/^rival\/secret-chat is not a public model \(or does not exist\), and it is not acme's/);
  });

  it("leaves a forge outage to the retry: thrown, with no notice posted", async () => {
    commit(goldenAdapter());
    t.forge.failNext("openPullRequest", new SafeLoraError("the forge is down", "hub-unavailable"));
    await expect(patch()).rejects.toMatchObject({ code: "hub-unavailable" });
    expect(t.forge.repoOf(REPO).discussions).toEqual([]);
    expect(await patch()).toMatchObject({ outcome: "committed", pr: 1 });
  });
});

describe("the patch job: re-patches that a newer one replaced", () => {
  it("steps aside when a newer re-patch of the folder was queued before it started: only the newest runs, both comments are answered", async () => {
    commit(goldenAdapter());
    await patch();
    // Two members' re-patch comments on the pull request, each queued by its command job before any patch ran.
    const asked = [];
    for (const text of ["@safe-lora-bot repatch top-k=2", "@safe-lora-bot repatch top-k=3"]) {
      const commentId = t.forge.commentAs({ repo: REPO, discussion: 1, author: MEMBER, text });
      expect(await runCommand(t.job, { repo: REPO, discussion: 1, isPullRequest: true, commentId, content: text })).toEqual({ queued: "repatch", folder: "." });
      asked.push(commentId);
    }
    const jobs = (await t.jobs()).filter((job) => job.kind === "patch");
    expect(jobs.map((job) => job.supersedes)).toEqual([repatchGroup({ forge: "hub", repo: REPO, folder: "." }), repatchGroup({ forge: "hub", repo: REPO, folder: "." })]);
    const runner = t.context.queue.createRunner({ leaseMs: 60_000, pollMs: 10, retryBaseMs: 10 });
    runner.start(jobHandler(t.context));
    try {
      await until(() => t.context.queue.counts(), (counts) => counts.done === 2);
    } finally {
      await runner.stop();
    }
    expect((await t.context.queue.get(jobs[0]!.id))!.result).toEqual({ outcome: "skipped", reason: "superseded by a newer re-patch" });
    expect((await t.context.queue.get(jobs[1]!.id))!.result).toMatchObject({ outcome: "committed", projected: 3 });
    const answers = t.forge.botComments(REPO, 1).map((c) => c.text);
    expect(answers.filter((text) => text.startsWith("Skipped: a newer re-patch request for this folder came in before I started this one"))).toHaveLength(1);
    expect(answers.filter((text) => /^Done: committed `[0-9a-f]{12}` — `\.` patched with `top-k:3`/.test(text))).toHaveLength(1);
    expect(botCommits(1)).toHaveLength(2);
  });
});
