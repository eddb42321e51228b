import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SafeLoraReport } from "../../src/report/schema.js";
import { BotWorld } from "../helpers/bot-world.js";
import { goldenPath, loadExpected } from "../helpers/golden.js";
import { expectGoldenSelection } from "../helpers/golden-compare.js";
import { readAllTensors } from "../helpers/tensors.js";
import { SafetensorsFile } from "../../src/safetensors/safetensors-file.js";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

let world: BotWorld;
beforeAll(async () => {
  world = await BotWorld.create();
  await world.startBot();
});
afterAll(() => world.close());

describe("push an adapter → one pull request", () => {
  let num: number;

  it("opens one PR whose variant equals the engine's output for the configured selection", async () => {
    await world.pushAdapter();
    await world.idle();
    const prs = world.pullRequests();
    expect(prs).toHaveLength(1);
    num = prs[0]!.num;
    expect(prs[0]!.title).toBe("Add Safe LoRA variant");
    const report = SafeLoraReport.parse(JSON.parse(world.fileAt(`refs/pr/${num}`, "safe-lora/safe-lora-report.json")!.toString("utf8")));
    expectGoldenSelection(report, loadExpected(world.caseName).runs.find((run) => run.expected_dir === "expected-threshold-0.33")!);
    // The variant's tensors are the engine's: the official output within 1e-5, unprojected tensors bit-identical.
    const path = join(world.work, "variant.safetensors");
    writeFileSync(path, world.fileAt(`refs/pr/${num}`, "safe-lora/adapter_model.safetensors")!);
    const ours = await readAllTensors(path);
    const official = await readAllTensors(goldenPath(world.caseName, "expected-threshold-0.33", "adapter_model.safetensors"));
    for (const [name, tensor] of official.tensors) {
      const mine = ours.tensors.get(name)!;
      const diff = Math.max(...Array.from(mine.values(), (v, i) => Math.abs(v - tensor.values()[i]!)));
      expect(diff, name).toBeLessThan(1e-6);
    }
    const file = await SafetensorsFile.openPath(path);
    expect(file.header.metadata["safe_lora.selection"]).toBe("threshold:0.33");
    await file.close();
  });

  it("writes the card, chart, config and a root README section in the PR", async () => {
    const card = world.fileAt(`refs/pr/${num}`, "safe-lora/README.md")!.toString("utf8");
    expect(card).toMatch(/^---\nbase_model: test-org\/llama-gqa-qv-chat\nbase_model_relation: adapter\nlibrary_name: peft\nlicense: apache-2.0\n/);
    expect(world.fileAt(`refs/pr/${num}`, "safe-lora/similarity.svg")!.toString("utf8")).toMatch(/^<svg/);
    expect(world.fileAt(`refs/pr/${num}`, "safe-lora/adapter_config.json")).toEqual(world.fileAt("refs/heads/main", "adapter_config.json"));
    const readme = world.fileAt(`refs/pr/${num}`, "README.md")!.toString("utf8");
    expect(readme).toMatch(/^---\nlicense: apache-2.0\n---\n# An adapter repo\n/);
    expect(readme).toMatch(/## Safe LoRA variant[\s\S]*\[`safe-lora\/`\]\(\.\/safe-lora\)/);
  });

  it("describes the PR: summary table, how to try it with this PR's revision, the commands", async () => {
    const description = world.repo().discussions.find((d) => d.num === num)!.events[0]!.content!;
    expect(description).toMatch(/<!-- safe-lora-bot:pull-request \{"folder":"."\} -->/);
    expect(description).toMatch(/\| Modules projected \| 4 \/ 8 \|/);
    expect(description).toMatch(new RegExp(`revision="refs/pr/${num}"`));
    expect(description).toMatch(/@safe-lora-bot repatch threshold:0\.4/);
    // What merging changes, from the pull request's own files: the root README too, not only the variant.
    expect(description).toContain("**What this pull request changes** (6 files; nothing else in the repo):");
    expect(description).toMatch(/^- changes `README\.md` — the repo's card/m);
    expect(description).toMatch(/^- adds `safe-lora\/similarity\.svg`$/m);
  });

  it("does not react to its own variant folder, PR commits, comments or edits (no loops)", async () => {
    const jobsBefore = (await world.bot!.context.queue.recent(100)).length;
    // Merging the PR puts safe-lora/ on main: a push to main the bot must not take for a new adapter.
    const merge = await fetch(`${world.hub.url}/api/models/${world.adapterRepo}/discussions/${num}/merge`, { method: "POST", headers: { Authorization: `Bearer ${world.alice.token}` } });
    expect(merge.status).toBe(200);
    await world.idle();
    const jobs = await world.bot!.context.queue.recent(100);
    expect(world.pullRequests()).toHaveLength(1);
    // The merge's push makes one scan, which finds nothing to do.
    expect(jobs.length - jobsBefore).toBe(1);
    expect(jobs[0]).toMatchObject({ kind: "scan", state: "done" });
    expect(jobs.filter((job) => job.kind === "patch")).toHaveLength(1);
  });
});
