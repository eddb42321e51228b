import { readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BotWorld } from "../helpers/bot-world.js";
import { goldenPath } from "../helpers/golden.js";

/** Issue 8 items 8 and 9: what a repo owner reads from the bot, and what its operator sees of refused jobs. */
let world: BotWorld;
beforeEach(async () => {
  world = await BotWorld.create();
});
afterEach(() => world.close());

const push = (files: Record<string, string>, title = "Configure") => world.commitFiles(files, { title });

/** The golden adapter into `folder`, in one commit, its config naming a path on the training machine as its base. */
async function pushAdapterTrainedOnLocalPath(folder: string) {
  const config = JSON.parse(readFileSync(goldenPath(world.caseName, "adapter", "adapter_config.json"), "utf8")) as Record<string, unknown>;
  const at = (name: string) => (folder === "." ? name : `${folder}/${name}`);
  await world.commitFiles(
    {
      [at("adapter_config.json")]: JSON.stringify({ ...config, base_model_name_or_path: "/home/me/checkpoints/chat" }),
      [at("adapter_model.safetensors")]: readFileSync(goldenPath(world.caseName, "adapter", "adapter_model.safetensors")),
    },
    { title: "Upload adapter" },
  );
}

const botNotices = () => world.repo().discussions.filter((d) => !d.isPullRequest && d.authorId === world.botUser.id);

describe("the bot's refusal notice (item 8)", () => {
  it("speaks safe-lora.yaml, not flags; a later success closes it, and leaves others' discussions alone", async () => {
    await world.startBot();
    // The golden chat model is in no registry: with the model tree off, its base cannot be found.
    await push({ "safe-lora.yaml": "allowModelTree: false\n" });
    await world.pushAdapter();
    await world.idle();
    expect(world.pullRequests()).toHaveLength(0);
    const [notice] = botNotices();
    const text = notice!.events[0]!.content!;
    expect(text).toMatch(/test-org\/llama-gqa-qv-chat is not in the registry of known pairs, and choosing its base from the Hub model tree is turned off/);
    expect(text).toContain("Name its unaligned base model in `safe-lora.yaml` at the root of this repo:");
    expect(text).toContain("```yaml\npair:\n  base: <hub id of the unaligned base model>\n  aligned: test-org/llama-gqa-qv-chat\n```");
    expect(text).toContain("Or set `allowModelTree: true` there");
    expect(text).not.toMatch(/--base|--aligned|pass --/i);

    // Someone else's discussion that copies the bot's marker is not the bot's to close.
    const forged = await fetch(`${world.hub.url}/api/models/${world.adapterRepo}/discussions`, {
      method: "POST",
      headers: { Authorization: `Bearer ${world.alice.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ title: "Same here", description: `${text.split("\n")[0]}\nI could not patch it either.` }),
    });
    const forgedNum = ((await forged.json()) as { num: number }).num;

    // The owner does what the notice says.
    await push({ "safe-lora.yaml": "allowModelTree: false\npair:\n  base: test-org/llama-gqa-qv-base\n  aligned: test-org/llama-gqa-qv-chat\n" });
    await world.idle();
    expect(world.pullRequests()).toHaveLength(1);
    const pr = world.pullRequests()[0]!.num;
    const closed = world.repo().discussions.find((d) => d.num === notice!.num)!;
    expect(closed.status).toBe("closed");
    const last = closed.events.filter((e) => e.type === "comment").at(-1)!;
    expect(last.authorId).toBe(world.botUser.id);
    expect(last.content).toMatch(new RegExp(`^Done: pull request #${pr} holds a Safe LoRA variant of \`\\.\` \\(commit \`[0-9a-f]{12}\`, \`threshold:0\\.33\`, \\d+ of 8 modules projected\\)\\. Closing this discussion\\.$`));
    expect(world.repo().discussions.find((d) => d.num === forgedNum)!.status).toBe("open");
  });

  it("names the pair to write when the aligned model cannot be told", async () => {
    await world.startBot();
    await pushAdapterTrainedOnLocalPath(".");
    await world.idle();
    const text = botNotices().at(-1)!.events[0]!.content!;
    expect(text).toMatch(/cannot tell which aligned model the adapter was trained on: base_model_name_or_path "\/home\/me\/checkpoints\/chat" is not a Hub id/);
    expect(text).toContain("or set `base_model_name_or_path` in `adapter_config.json` to the Hub id of the model it was trained on.");
    expect(text).toContain("pair:\n  base: <hub id of the unaligned base model>\n  aligned: <hub id of the chat/instruct model it was trained on>");
    expect(text).not.toMatch(/--base|--aligned|pass --/i);
  });
});

describe("what the operator sees of each job's outcome (item 9)", () => {
  it("committed, unchanged, refused and failed on /, in /metrics and in /healthz", async () => {
    await world.startBot();
    await world.pushAdapter("good");
    await pushAdapterTrainedOnLocalPath("bad");
    await world.idle();
    const pr = world.pullRequests()[0]!.num;
    await world.comment(world.alice, pr, "@safe-lora-bot repatch");
    await world.idle();
    // A stored job that no longer reads as its kind fails for good at once.
    await world.bot!.context.queue.enqueue({ key: "damaged", kind: "patch", forge: "hub", repo: world.adapterRepo, private: false, payload: { folder: 7 } });
    await world.idle();

    const notice = botNotices().at(-1)!.num;
    const base = `http://127.0.0.1:${world.bot!.port}`;
    const page = await (await fetch(`${base}/`)).text();
    const row = (outcome: string) => page.split("\n").filter((line) => line.startsWith("<tr>") && line.includes(`badge ${outcome}"`));
    expect(row("committed")).toHaveLength(1);
    expect(row("committed")[0]).toMatch(new RegExp(`<td>good</td><td><a href="[^"]*/discussions/${pr}">PR #${pr}</a></td><td class="detail">commit [0-9a-f]{12}, \\d+ of 8 modules projected</td>`));
    expect(row("unchanged")[0]).toContain(`PR #${pr}</a>`);
    expect(row("refused")).toHaveLength(1);
    expect(row("refused")[0]).toMatch(new RegExp(`<td>bad</td><td><a href="[^"]*/discussions/${notice}">notice #${notice}</a></td><td class="detail">cannot tell which aligned model`));
    expect(row("failed")[0]).toMatch(/the stored job is damaged/);
    expect(page).toMatch(/All jobs so far: <span class="badge committed">1 committed<\/span> <span class="badge unchanged">1 unchanged<\/span> <span class="badge refused">1 refused<\/span> <span class="badge failed">1 failed<\/span>/);

    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('safe_lora_jobs_finished_total{kind="patch",outcome="committed"} 1');
    expect(metrics).toContain('safe_lora_jobs_finished_total{kind="patch",outcome="unchanged"} 1');
    expect(metrics).toContain('safe_lora_jobs_finished_total{kind="patch",outcome="refused"} 1');
    expect(metrics).toContain('safe_lora_jobs_finished_total{kind="patch",outcome="failed"} 1');
    expect(metrics).not.toContain(world.adapterRepo);

    const health = (await (await fetch(`${base}/healthz`)).json()) as { jobs: Record<string, number> };
    expect(health.jobs).toMatchObject({ refused: 1, failed: 1, queued: 0, running: 0 });
  });
});
