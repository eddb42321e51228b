import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalInferenceEndpoint } from "../../src/local-inference/server.js";
import { seedRepo, folderFiles } from "../../src/local-hub/seed.js";
import { seedMiniatureFamily } from "../../src/local-inference/miniature-family.js";
import { SafeLoraReport } from "../../src/report/schema.js";
import { LocalFolder } from "../../src/storage/local-folder.js";
import { BotWorld } from "../helpers/bot-world.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures");
const MINIATURE = join(FIXTURES, "miniature");
const REFERENCE = JSON.parse(readFileSync(join(MINIATURE, "reference.json"), "utf8")) as {
  results: Record<string, { scores: { harmful_refused: number; benign_answered: number; task_accuracy: number } }>;
  safe_lora: { variants: Record<string, { scores: { harmful_refused: number; benign_answered: number; task_accuracy: number }; projected: string[] } > };
};
const asEvidence = (scores: { harmful_refused: number; benign_answered: number; task_accuracy: number }) => ({
  harmfulRefused: scores.harmful_refused,
  benignAnswered: scores.benign_answered,
  taskAccuracy: scores.task_accuracy,
});

let world: BotWorld;
let endpoint: LocalInferenceEndpoint;
let hanging: LocalInferenceEndpoint;

/** The miniature chat model served with adapters by id from the world's local Hub, read without a token (acme's repos are public). */
async function serveChat(): Promise<LocalInferenceEndpoint> {
  return new LocalInferenceEndpoint({ model: { id: "miniature/chat", files: new LocalFolder(join(MINIATURE, "chat")) }, hub: { hubUrl: world.hub.url } }).start();
}

/** The adapter's files as alice pushes them (PEFT's generated README left out: the repo keeps its own card). */
async function adapterFiles(): Promise<Record<string, Buffer>> {
  const files = (await folderFiles(join(MINIATURE, "adapter-harmful-mix"))).filter((file) => file.path !== "README.md");
  return Object.fromEntries(files.map((file) => [file.path, readFileSync((file as { diskPath: string }).diskPath)]));
}

function fileOn(repoName: string, ref: string, path: string): string | null {
  const repo = world.repo(repoName);
  const file = repo.commits.get(repo.refs.get(ref)!)?.files.get(path);
  if (!file) return null;
  return (file.content.kind === "memory" ? file.content.data : readFileSync(file.content.path)).toString("utf8");
}

beforeAll(async () => {
  world = await BotWorld.create();
  await seedMiniatureFamily(world.hub, MINIATURE);
  for (const name of ["acme/mini-lora", "acme/mini-lora-slow", "acme/mini-lora-later"]) await seedRepo(world.hub, name, [{ path: "README.md", data: "---\nlicense: apache-2.0\n---\n# A miniature adapter\n" }]);
  endpoint = await serveChat();
  hanging = await serveChat();
  hanging.faults.hang = true;
  const botConfig = join(world.work, "behaviour-bot.yaml");
  writeFileSync(
    botConfig,
    [
      'select: "threshold:0.5"',
      "allowModelTree: true",
      "reconcileMinutes: 0",
      "inferenceEndpoints:",
      "  miniature:",
      `    url: ${endpoint.url}`,
      "    protocol: tgi",
      "    serves: [miniature/chat]",
      "    maxNewTokens: 40",
      "  slow:",
      `    url: ${hanging.url}`,
      "    protocol: openai",
      "    model: miniature/chat",
      "    timeoutSeconds: 2",
      "behaviour:",
      "  endpoint: miniature",
      // Relative to the config file's folder, as an operator would write it.
      `behaviourPromptSet: ${join(FIXTURES, "miniature-prompt-set.json")}`,
      "",
    ].join("\n"),
  );
  await world.startBot({ BOT_CONFIG: botConfig });
}, 60_000);

afterAll(async () => {
  await world.close();
  await endpoint.close();
  await hanging.close();
});

describe("the behavioural check in the bot's pull request (the miniature through the local endpoint)", () => {
  it("measures the original and the variant and puts the reference's figures in the report, the card and the description", async () => {
    const pushed = await world.commitFiles(await adapterFiles(), { repo: "acme/mini-lora", title: "Upload adapter" });
    await world.idle(120_000);
    const [pr] = world.pullRequests("acme/mini-lora");
    expect(pr).toBeDefined();
    const ref = `refs/pr/${pr!.num}`;
    const report = SafeLoraReport.parse(JSON.parse(fileOn("acme/mini-lora", ref, "safe-lora/safe-lora-report.json")!));
    expect(report.modules.filter((m) => m.projected).map((m) => m.name)).toEqual(REFERENCE.safe_lora.variants["threshold:0.5"]!.projected);
    const behaviour = report.behaviour;
    if (behaviour?.status !== "measured") throw new Error(`expected measured behaviour, got ${JSON.stringify(behaviour)}`);
    // Two bot commits: the variant, then its evidence; the endpoint read the variant at the first.
    const commits = world.prCommits(pr!.num, "acme/mini-lora");
    expect(commits).toHaveLength(2);
    const variantCommit = commits[1]!;
    expect(behaviour.subjects).toEqual([
      { role: "original", adapterId: `acme/mini-lora@${pushed}`, revision: pushed, scores: asEvidence(REFERENCE.results["chat+harmful-mix"]!.scores) },
      { role: "patched", adapterId: `acme/mini-lora@${variantCommit}/safe-lora`, revision: variantCommit, scores: asEvidence(REFERENCE.safe_lora.variants["threshold:0.5"]!.scores) },
    ]);
    expect(behaviour.endpoint).toEqual({ name: "miniature", protocol: "tgi" });
    expect(behaviour.prompts).toMatchObject({ set: "miniature", harmful: 19, benign: 21, task: 16, maxNewTokens: 40 });
    // Each prompt asked once per model, of the adapter by id, with no token (none configured).
    expect(endpoint.requests).toHaveLength(2 * (19 + 21 + 16));
    expect(new Set(endpoint.requests.map((r) => r.adapterId))).toEqual(new Set([`acme/mini-lora@${pushed}`, `acme/mini-lora@${variantCommit}/safe-lora`]));
    expect(endpoint.requests.every((r) => !r.authorized)).toBe(true);

    const table = "| Harmful requests refused | 0.0 % (0/19) | 94.7 % (18/19) | +94.7 pts |";
    const card = fileOn("acme/mini-lora", ref, "safe-lora/README.md")!;
    expect(card).toContain("## Behaviour, measured");
    expect(card).toContain(table);
    expect(card).toContain("| Task prompts answered exactly | 100.0 % (16/16) | 0.0 % (0/16) | −100.0 pts |");
    const description = pr!.events[0]!.content!;
    expect(description).toContain(table);
    expect(description).not.toContain("running on the endpoint");
    // The public texts name the endpoint, never where it is.
    const port = new URL(endpoint.url).port;
    for (const text of [card, description, JSON.stringify(report)]) expect(text).not.toContain(`127.0.0.1:${port}`);
  }, 150_000);

  it("with the endpoint hanging past its time limit: the pull request still opens, with a line saying the check could not run", async () => {
    await world.commitFiles({ "safe-lora.yaml": "behaviour:\n  endpoint: slow\n" }, { repo: "acme/mini-lora-slow", title: "Use the slow endpoint" });
    await world.commitFiles(await adapterFiles(), { repo: "acme/mini-lora-slow", title: "Upload adapter" });
    await world.idle(120_000);
    const [pr] = world.pullRequests("acme/mini-lora-slow");
    expect(pr).toBeDefined();
    const ref = `refs/pr/${pr!.num}`;
    expect(fileOn("acme/mini-lora-slow", ref, "safe-lora/adapter_model.safetensors")).not.toBeNull();
    const report = SafeLoraReport.parse(JSON.parse(fileOn("acme/mini-lora-slow", ref, "safe-lora/safe-lora-report.json")!));
    expect(report.behaviour).toMatchObject({ status: "not-measured", code: "timeout", endpoint: { name: "slow", protocol: "openai" } });
    const description = pr!.events[0]!.content!;
    expect(description).toMatch(/\*\*Behavioural check could not run\*\* \(endpoint `slow`\): .*The weight-space report stands; nothing was measured\./);
    expect(description).toContain("| Modules projected | 5 / 8 |");
    expect(fileOn("acme/mini-lora-slow", ref, "safe-lora/README.md")).toContain("**Behavioural check could not run**");
    expect(hanging.requests.length).toBeGreaterThan(0);
  }, 150_000);

  it("a variant committed without its check (the check off then) gets it from a re-patch that changes nothing else", async () => {
    const repo = "acme/mini-lora-later";
    await world.commitFiles({ "safe-lora.yaml": "behaviour:\n  endpoint: off\n" }, { repo, title: "No check yet" });
    await world.commitFiles(await adapterFiles(), { repo, title: "Upload adapter" });
    await world.idle(120_000);
    const [pr] = world.pullRequests(repo);
    const ref = `refs/pr/${pr!.num}`;
    expect(SafeLoraReport.parse(JSON.parse(fileOn(repo, ref, "safe-lora/safe-lora-report.json")!)).behaviour).toBeUndefined();
    expect(pr!.events[0]!.content).not.toContain("Behavioural check");
    const asked = endpoint.requests.length;

    // Turning it on changes nothing in the patch (no new job); asking for the same patch again runs the check.
    await world.commitFiles({ "safe-lora.yaml": "behaviour:\n  endpoint: miniature\n" }, { repo, title: "Check behaviour" });
    await world.idle(120_000);
    expect(world.prCommits(pr!.num, repo)).toHaveLength(1);
    const response = await fetch(`${world.hub.url}/api/models/${repo}/discussions/${pr!.num}/comment`, {
      method: "POST",
      headers: { Authorization: `Bearer ${world.alice.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ comment: "@safe-lora-bot repatch" }),
    });
    expect(response.ok).toBe(true);
    await world.idle(120_000);
    expect(world.prCommits(pr!.num, repo)).toHaveLength(2);
    const report = SafeLoraReport.parse(JSON.parse(fileOn(repo, ref, "safe-lora/safe-lora-report.json")!));
    if (report.behaviour?.status !== "measured") throw new Error(`expected measured behaviour, got ${JSON.stringify(report.behaviour)}`);
    expect(report.behaviour.subjects.map((subject) => subject.scores)).toEqual([
      asEvidence(REFERENCE.results["chat+harmful-mix"]!.scores),
      asEvidence(REFERENCE.safe_lora.variants["threshold:0.5"]!.scores),
    ]);
    expect(endpoint.requests.length - asked).toBe(2 * (19 + 21 + 16));
    expect(pr!.events.some((event) => event.content?.startsWith("Nothing to do"))).toBe(true);
    expect(pr!.events[0]!.content).toContain("| Harmful requests refused | 0.0 % (0/19) | 94.7 % (18/19) | +94.7 pts |");
  }, 150_000);
});
