import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SafeLoraReport } from "../../src/report/schema.js";
import { BotWorld } from "../helpers/bot-world.js";

let world: BotWorld;
let num: number;
beforeAll(async () => {
  world = await BotWorld.create();
  await world.startBot();
  await world.pushAdapter();
  await world.idle();
  num = world.pullRequests()[0]!.num;
});
afterAll(() => world.close());

const report = (ref: string) => SafeLoraReport.parse(JSON.parse(world.fileAt(ref, "safe-lora/safe-lora-report.json")!.toString("utf8")));
const botComments = () => world.repo().discussions.find((d) => d.num === num)!.events.filter((e) => e.type === "comment" && e.authorId === world.botUser.id).slice(1);

describe("@safe-lora-bot repatch by an organisation member", () => {
  it("adds one commit to the same PR with the new selection, and edits one acknowledgement with the result", async () => {
    expect(world.prCommits(num)).toHaveLength(1);
    const before = world.fileAt(`refs/pr/${num}`, "safe-lora/adapter_model.safetensors")!;
    await world.comment(world.alice, num, "Looks good. @safe-lora-bot repatch tau=0.5");
    await world.idle();
    expect(world.pullRequests()).toHaveLength(1);
    expect(world.prCommits(num)).toHaveLength(2);
    const after = report(`refs/pr/${num}`);
    expect(after.selection).toMatchObject({ mode: "threshold", value: 0.5 });
    expect(after.projectedCount).toBe(8);
    expect(world.fileAt(`refs/pr/${num}`, "safe-lora/adapter_model.safetensors")!.equals(before)).toBe(false);
    const acks = botComments();
    expect(acks).toHaveLength(1);
    expect(acks[0]!.edits).toBeGreaterThanOrEqual(1);
    expect(acks[0]!.content).toMatch(/^Done: committed `[0-9a-f]{12}` — `\.` patched with `threshold:0\.5`, 8 of 8 modules projected\./);
    const description = world.repo().discussions.find((d) => d.num === num)!.events[0]!.content!;
    expect(description).toMatch(/\| Modules projected \| 8 \/ 8 \|/);
  });

  it("the same command again changes nothing and says so", async () => {
    await world.comment(world.alice, num, "@safe-lora-bot repatch threshold:0.5");
    await world.idle();
    expect(world.prCommits(num)).toHaveLength(2);
    const acks = botComments();
    expect(acks).toHaveLength(2);
    expect(acks[1]!.content).toMatch(/^Nothing to do: this pull request already holds `\.` patched with `threshold:0\.5`/);
  });

  it("answers status and help, and explains a bad value with the help", async () => {
    await world.comment(world.alice, num, "@safe-lora-bot status");
    await world.comment(world.alice, num, "@safe-lora-bot repatch tau=7");
    await world.comment(world.alice, num, "@safe-lora-bot dance");
    await world.idle();
    const [status, bad, unknown] = botComments().slice(2);
    expect(status!.content).toMatch(/Pull request #\d+ holds `\.` at `[0-9a-f]{12}`:\n- selection `threshold:0\.5`, 8 of 8 modules projected/);
    expect(bad!.content).toMatch(/I did not understand `@\u2060safe-lora-bot repatch tau=7`: "tau=7": the threshold value must be a number from -1 to 1[\s\S]*Commands/);
    expect(unknown!.content).toMatch(/unknown command \\`dance\\`[\s\S]*@safe-lora-bot repatch/);
    expect(world.prCommits(num)).toHaveLength(2);
  });

  it("refuses a commenter from outside the organisation, and queues no work", async () => {
    const jobs = (await world.bot!.context.queue.recent(200)).filter((j) => j.kind === "patch").length;
    await world.comment(world.mallory, num, "@safe-lora-bot repatch top-k=1");
    await world.idle();
    const last = botComments().at(-1)!;
    expect(last.content).toMatch(/Only members of `acme` .* can ask me to act on this repo/);
    expect((await world.bot!.context.queue.recent(200)).filter((j) => j.kind === "patch")).toHaveLength(jobs);
    expect(world.prCommits(num)).toHaveLength(2);
  });

  it("stop closes the PR and stops covering the adapter; start covers it again", async () => {
    await world.comment(world.alice, num, "@safe-lora-bot stop");
    await world.idle();
    expect(world.repo().discussions.find((d) => d.num === num)!.status).toBe("closed");
    // A new version of the adapter is not patched while stopped.
    await world.pushAdapter(".", "expected-threshold-0.5");
    await world.idle();
    expect(world.pullRequests()).toHaveLength(1);
    await world.comment(world.alice, num, "@safe-lora-bot start");
    await world.idle();
    const prs = world.pullRequests();
    expect(prs).toHaveLength(2);
    expect(prs[1]!.status).toBe("open");
  });
});
