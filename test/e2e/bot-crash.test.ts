import type { ChildProcess } from "node:child_process";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { JobQueue } from "../../src/queue/job-queue.js";
import { BotWorld } from "../helpers/bot-world.js";

let world: BotWorld;

beforeEach(async () => {
  world = await BotWorld.create();
});
afterEach(() => world.close());

const spawnBot = () => world.spawnBot();

function killed(bot: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (bot.exitCode !== null || bot.signalCode !== null) resolve();
    else bot.once("exit", () => resolve());
  });
}

/** Waits until the queue has nothing left to do, as another bot process of the same environment reads it. */
const queueIdle = (): Promise<JobQueue> => world.queueIdle();

describe("a bot killed with SIGKILL", () => {
  it("right after the Hub accepted its pull request, and before the job was marked done: one PR, one commit after restart", async () => {
    const first = await spawnBot();
    world.subscribe(first.port);
    let kills = 0;
    world.hub.hooks.afterCommit = async (repo, ref) => {
      if (repo === world.adapterRepo && ref.startsWith("refs/pr/") && kills++ === 0) {
        first.process.kill("SIGKILL");
        await killed(first.process);
      }
    };
    await world.pushAdapter();
    await killed(first.process);
    expect(world.pullRequests()).toHaveLength(1);

    const second = await spawnBot();
    world.subscribe(second.port);
    const queue = await queueIdle();
    const patch = (await queue.recent(10)).find((job) => job.kind === "patch")!;
    expect(patch.state).toBe("done");
    expect(patch.attempts).toBeGreaterThanOrEqual(2);
    expect(patch.result).toMatchObject({ outcome: "unchanged" });
    await queue.close();
    expect(world.pullRequests()).toHaveLength(1);
    expect(world.prCommits(world.pullRequests()[0]!.num)).toHaveLength(1);
    // The restarted job also finished what the killed one could not: the description names this PR's revision.
    expect(world.pullRequests()[0]!.events[0]!.content).toMatch(/revision="refs\/pr\/1"/);
  });

  it("right after a re-patch commit: still one commit for that request, and the acknowledgement gets its result", async () => {
    const first = await spawnBot();
    world.subscribe(first.port);
    await world.pushAdapter();
    await queueIdle();
    const num = world.pullRequests()[0]!.num;
    world.hub.hooks.afterCommit = async (_repo, ref) => {
      if (ref === `refs/pr/${num}`) {
        first.process.kill("SIGKILL");
        await killed(first.process);
      }
    };
    await world.comment(world.alice, num, "@safe-lora-bot repatch fraction=0.5");
    await killed(first.process);
    world.hub.hooks.afterCommit = undefined;
    expect(world.prCommits(num)).toHaveLength(2);

    const second = await spawnBot();
    world.subscribe(second.port);
    await (await queueIdle()).close();
    expect(world.pullRequests()).toHaveLength(1);
    expect(world.prCommits(num)).toHaveLength(2);
    const acks = world.pullRequests()[0]!.events.filter((e) => e.type === "comment" && e.authorId === world.botUser.id).slice(1);
    expect(acks).toHaveLength(1);
    expect(acks[0]!.content).toMatch(/^Nothing to do: this pull request already holds `\.` patched with `fraction:0\.5`/);
  });

  it("in the middle of the computation: the job completes after restart", async () => {
    const first = await spawnBot();
    world.subscribe(first.port);
    let reads = 0;
    world.hub.hooks.onRequest = async (method, path) => {
      // The third range read of the base model's weights: some modules are done, others are not.
      if (method === "GET" && path.startsWith(`/test-org/${world.caseName}-base/resolve/`) && ++reads === 3) {
        first.process.kill("SIGKILL");
        await killed(first.process);
      }
    };
    await world.pushAdapter();
    await killed(first.process);
    world.hub.hooks.onRequest = undefined;
    expect(world.pullRequests()).toHaveLength(0);

    const second = await spawnBot();
    world.subscribe(second.port);
    const queue = await queueIdle();
    expect((await queue.recent(10)).find((job) => job.kind === "patch")).toMatchObject({ state: "done", result: { outcome: "committed", created: true } });
    await queue.close();
    expect(world.pullRequests()).toHaveLength(1);
    expect(world.prCommits(world.pullRequests()[0]!.num)).toHaveLength(1);
  });

  it("between deciding to post a refusal notice and the forge taking it: the notice is posted once after restart", async () => {
    const first = await spawnBot();
    world.subscribe(first.port);
    let kills = 0;
    world.hub.hooks.onRequest = async (method, path) => {
      // The bot asks the Hub to open its notice discussion: it dies, and the Hub never takes the request.
      if (method === "POST" && path === `/api/models/${world.adapterRepo}/discussions` && kills++ === 0) {
        first.process.kill("SIGKILL");
        await killed(first.process);
        throw new Error("the bot died before the Hub took its request");
      }
    };
    // With the model tree off, the golden chat model's base cannot be found: a refusal, explained in a notice.
    await world.commitFiles({ "safe-lora.yaml": "allowModelTree: false\n" });
    await world.pushAdapter();
    await killed(first.process);
    const notices = () => world.repo().discussions.filter((d) => !d.isPullRequest && d.authorId === world.botUser.id);
    expect(notices()).toHaveLength(0);

    const second = await spawnBot();
    world.subscribe(second.port);
    const queue = await queueIdle();
    expect((await queue.recent(10)).find((job) => job.kind === "patch")).toMatchObject({ state: "done", result: { outcome: "refused", code: "no-pair" } });
    await queue.close();
    expect(notices()).toHaveLength(1);
    expect(notices()[0]!.events[0]!.content).toMatch(/could not make a Safe LoRA variant/);
  });
});
