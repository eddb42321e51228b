import { hostname } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedRepo } from "../../src/local-hub/seed.js";
import { serializeSafetensors } from "../../src/safetensors/write.js";
import { SqliteJobQueue } from "../../src/queue/sqlite-queue.js";
import { BotWorld } from "../helpers/bot-world.js";
import { goldenPath } from "../helpers/golden.js";
import { readForRewrite } from "../helpers/tensors.js";

/** Issue 7 items 14 and 15: outside text the bot publishes stays text, and nothing names its host. */
const CRAFTED = "base_model.model.model.layers.0.self_attn.x_proj\n\n# Urgent: re-authenticate\n@alice please log in at [the Hub](https://evil.example/login) `now`";

/** The parts of a Markdown text outside fenced code blocks (fences of three or more backticks). */
function outsideFences(text: string): string {
  const kept: string[] = [];
  let fence: string | null = null;
  for (const line of text.split("\n")) {
    const opening = /^(`{3,})/.exec(line)?.[1];
    if (fence === null && opening) fence = opening;
    else if (fence !== null && line.startsWith(fence) && line.trim() === fence) fence = null;
    else if (fence === null) kept.push(line);
  }
  return kept.join("\n");
}

let world: BotWorld;
beforeAll(async () => {
  world = await BotWorld.create();
  await world.startBot();
});
afterAll(() => world.close());

describe("outside text in what the bot publishes (item 14)", () => {
  it("fences a failure message that quotes a crafted tensor name: no heading, link or mention escapes", async () => {
    const adapter = await readForRewrite(goldenPath("llama-gqa-qv", "adapter", "adapter_model.safetensors"));
    const a = adapter.tensors.find((t) => t.name.endsWith("lora_A.weight"))!;
    // A DoRA vector is refused with its tensor name quoted, newlines and all.
    const tensors = [...adapter.tensors, { ...a, name: `${CRAFTED}.lora_magnitude_vector` }];
    await world.pushAdapter();
    await world.idle();
    await world.commitFiles({ "adapter_model.safetensors": Buffer.concat(serializeSafetensors(adapter.metadata, tensors)) }, { title: "A crafted adapter" });
    await world.idle();
    const pr = world.pullRequests()[0]!;
    const notice = pr.events.map((e) => e.content ?? "").find((c) => c.includes("could not make a Safe LoRA variant"))!;
    expect(notice).toContain("# Urgent"); // quoted, inside the fence
    const prose = outsideFences(notice);
    expect(prose).not.toMatch(/^#/m);
    expect(prose).not.toContain("evil.example");
    expect(notice).not.toMatch(/@alice/); // "@\u2060alice" notifies nobody
    expect(notice).toContain("@\u2060alice");
  });

  it("keeps a command with backticks inside its code span, and mentions nobody it names", async () => {
    const pr = world.pullRequests()[0]!;
    await world.comment(world.alice, pr.num, "@safe-lora-bot repatch ``x` @mallory [click](https://evil.example)");
    await world.idle();
    const reply = pr.events.at(-1)!.content;
    expect(reply).toMatch(/^I did not understand (`{3,})@\u2060safe-lora-bot repatch ``x` @\u2060mallory \[click\]\(https:\/\/evil\.example\)\1: /);
    expect(reply).not.toMatch(/@mallory/);
  });
});

describe("host detail and private names (item 15)", () => {
  it("publishes no host name or process id in the pull request or its report", async () => {
    const pr = world.pullRequests()[0]!;
    const description = pr.events[0]!.content;
    const report = world.fileAt(`refs/pr/${pr.num}`, "safe-lora/safe-lora-report.json")!.toString("utf8");
    for (const text of [description, report]) {
      expect(text).not.toContain(hostname());
      expect(text).not.toMatch(new RegExp(`:${process.pid}\\b`));
    }
    expect(JSON.parse(report)).not.toHaveProperty("worker");
  });

  it("names a private repo in no log line, refused or done", async () => {
    await world.bot!.stop();
    world.bot = null;
    const spawned = await world.spawnBot();
    await seedRepo(world.hub, "acme/secret-broken-lora", [
      { path: "adapter_config.json", data: JSON.stringify({ peft_type: "LORA", base_model_name_or_path: "test-org/llama-gqa-qv-chat", r: 8, lora_alpha: 16, target_modules: ["q_proj"] }) },
      { path: "adapter_model.safetensors", data: Buffer.from([1, 2, 3]) },
    ], { private: true });
    world.hub.store.orgByName("acme")!.memberIds.add(world.botUser.id);
    const queue = new SqliteJobQueue(join(world.work, "data", "safe-lora.db"));
    const sha = world.hub.store.repos.get("acme/secret-broken-lora")!.refs.get("refs/heads/main")!;
    await queue.enqueue({ key: "scan-secret", kind: "scan", forge: "hub", repo: "acme/secret-broken-lora", private: true, payload: { repo: "acme/secret-broken-lora", sha, reason: "request" } });
    await queue.enqueue({ key: "scan-gone", kind: "scan", forge: "hub", repo: "acme/secret-gone-lora", private: true, payload: { repo: "acme/secret-gone-lora", sha, reason: "request" } });
    const deadline = Date.now() + 20_000;
    const finished = () => spawned.output().includes('"job refused"') && spawned.output().includes('"outcome":"refused"');
    while (!finished() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await queue.close();
    const lines = spawned.output().split("\n").filter((line) => line.includes('"private":true'));
    expect(lines.some((line) => line.includes('"job refused"'))).toBe(true);
    expect(lines.some((line) => line.includes('"job done"'))).toBe(true);
    expect(spawned.output()).not.toContain("secret-broken");
    expect(spawned.output()).not.toContain("secret-gone");
    // Found in review: the status page showed a private job's refusal text (it quotes files and models) to anyone.
    const page = await (await fetch(`http://127.0.0.1:${spawned.port}/`)).text();
    expect(page).not.toMatch(/secret-|not a valid safetensors/);
    expect(page).toContain("code: malformed-safetensors");
  });
});
