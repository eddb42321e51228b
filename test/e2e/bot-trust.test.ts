import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { folderFiles, seedRepo } from "../../src/local-hub/seed.js";
import { BotWorld } from "../helpers/bot-world.js";
import { goldenPath } from "../helpers/golden.js";

/**
 * Issue 7: what a member of one covered organisation must not be able to make the bot do with its token.
 * `otherorg` is an organisation the bot's account belongs to (so its token reads otherorg's private repos),
 * whose owners never asked for anything.
 */
async function seedPrivatePair(world: BotWorld, owner: string) {
  await seedRepo(world.hub, `${owner}/private-base`, await folderFiles(goldenPath(world.caseName, "base")), { private: true });
  await seedRepo(world.hub, `${owner}/private-chat`, await folderFiles(goldenPath(world.caseName, "chat")), { private: true });
  world.hub.store.orgByName(owner)!.memberIds.add(world.botUser.id);
}

const push = (world: BotWorld, files: Record<string, string>) => world.commitFiles(files, { title: "Configure" });

const adapterConfigNaming = (aligned: string) => {
  const config = JSON.parse(readFileSync(goldenPath("llama-gqa-qv", "adapter", "adapter_config.json"), "utf8")) as Record<string, unknown>;
  return JSON.stringify({ ...config, base_model_name_or_path: aligned }, null, 2);
};

function notices(world: BotWorld) {
  return world
    .repo()
    .discussions.filter((d) => !d.isPullRequest && d.authorId === world.botUser.id)
    .map((d) => d.events[0]!.content);
}

/** Requests that read private otherorg files (tree listings, resolve URLs): any is a leak. */
function watchReads(world: BotWorld, owner: string): string[] {
  const reads: string[] = [];
  world.hub.hooks.onRequest = (method, path) => {
    if (path.includes(`${owner}/private-`) && (path.includes("/resolve/") || path.includes("/tree/"))) reads.push(`${method} ${path}`);
  };
  return reads;
}

describe("base and aligned models the bot may read (item 1)", () => {
  let world: BotWorld;
  let reads: string[];
  beforeAll(async () => {
    world = await BotWorld.create();
    await seedPrivatePair(world, "otherorg");
    await world.startBot();
    reads = watchReads(world, "otherorg");
  });
  afterAll(() => world.close());

  it("refuses another organisation's private pair named in safe-lora.yaml, reads none of it, and says what to do", async () => {
    await push(world, { "safe-lora.yaml": "pair:\n  base: otherorg/private-base\n  aligned: otherorg/private-chat\n" });
    await world.pushAdapter();
    await world.idle();
    expect(world.pullRequests()).toHaveLength(0);
    const [notice] = notices(world);
    expect(notice).toMatch(/otherorg\/private-chat is not a public model \(or does not exist\)/);
    expect(notice).toMatch(/trustedModels in BOT_CONFIG/);
    expect(reads).toEqual([]);
  });

  it("refuses a private aligned model named by the adapter's base_model_name_or_path the same way", async () => {
    await push(world, { "safe-lora.yaml": "select: top-k:2\n", "adapter_config.json": adapterConfigNaming("otherorg/private-chat") });
    await world.idle();
    expect(world.pullRequests()).toHaveLength(0);
    expect(notices(world).at(-1)).toMatch(/otherorg\/private-chat is not a public model \(or does not exist\)/);
    expect(reads).toEqual([]);
  });

  it("answers a missing model with the same words, so a refusal confirms nothing", async () => {
    await push(world, { "adapter_config.json": adapterConfigNaming("otherorg/no-such-chat") });
    await world.idle();
    // The first line is the notice's hidden key (it names the adapter files' version); the words follow.
    const words = (text: string, id: string) => text.split("\n").slice(1).join("\n").split(id).join("<id>");
    const [, privateOne, missing] = notices(world);
    expect(words(missing!, "otherorg/no-such-chat")).toBe(words(privateOne!, "otherorg/private-chat"));
  });

  // Found in review: a pair that names a folder on the bot's own disk was opened as a local folder, past mayRead.
  it("never opens a folder of the bot's own disk that a pair names, and refuses ids that climb", async () => {
    // `test/golden` … is a valid repo id and, from the bot's working directory, also an existing folder.
    await push(world, { "safe-lora.yaml": "pair:\n  base: test/fixtures\n  aligned: test/fixtures\n", "adapter_config.json": adapterConfigNaming("test-org/llama-gqa-qv-chat") });
    await world.idle();
    expect(world.pullRequests()).toHaveLength(0);
    expect(notices(world).at(-1)).toMatch(/test\/fixtures is not a public model \(or does not exist\)/);
    await push(world, { "safe-lora.yaml": "pair:\n  base: ../..\n  aligned: acme/.\n" });
    await world.idle();
    expect(notices(world).at(-1)).toMatch(/`pair\.base` \(safe-lora\.yaml, line 2\): must be a Hub repo id like org\/name/);
    await push(world, { "safe-lora.yaml": "select: top-k:2\n" });
    await world.idle();
  });

  it("reads private models of the adapter's own owner", async () => {
    await seedPrivatePair(world, "acme");
    await push(world, { "safe-lora.yaml": "pair:\n  base: acme/private-base\n  aligned: acme/private-chat\n", "adapter_config.json": adapterConfigNaming("acme/private-chat") });
    await world.idle();
    expect(world.pullRequests()).toHaveLength(1);
    const report = JSON.parse(world.fileAt(`refs/pr/${world.pullRequests()[0]!.num}`, "safe-lora/safe-lora-report.json")!.toString("utf8")) as { inputs: { aligned: { location: string } } };
    expect(report.inputs.aligned.location).toBe("acme/private-chat");
  });
});

describe("a repo's limits (item 5)", () => {
  let world: BotWorld;
  beforeAll(async () => {
    world = await BotWorld.create();
    await world.startBot();
  });
  afterAll(() => world.close());

  // The worker enforced only BOT_CONFIG's maxRunMinutes; the repo's lower one was ignored.
  it("holds a job to the repo's lower maxRunMinutes", async () => {
    await push(world, { "safe-lora.yaml": "limits:\n  maxRunMinutes: 0.00001\n" });
    await world.pushAdapter();
    await world.idle();
    expect(world.pullRequests()).toHaveLength(0);
    expect(notices(world).at(-1)).toMatch(/longer than the limit of 0.00001 minutes \(limits\.maxRunMinutes\)/);
    expect(notices(world).at(-1)).toMatch(/This repo's `safe-lora\.yaml` lowers `limits\.maxRunMinutes` to 0\.00001 minutes/);
  });
});

describe("trustedModels in BOT_CONFIG (item 1)", () => {
  let world: BotWorld;
  beforeAll(async () => {
    world = await BotWorld.create();
    await seedPrivatePair(world, "otherorg");
    const config = join(world.work, "trusting.yaml");
    writeFileSync(config, 'select: "threshold:0.33"\nreconcileMinutes: 0\ntrustedModels: ["otherorg/private-*"]\n');
    await world.startBot({ BOT_CONFIG: config });
  });
  afterAll(() => world.close());

  it("lets the operator allow another owner's private models (a repo's own file cannot: test/config)", async () => {
    await push(world, { "safe-lora.yaml": "pair:\n  base: otherorg/private-base\n  aligned: otherorg/private-chat\n" });
    await world.pushAdapter();
    await world.idle();
    expect(notices(world)).toEqual([]);
    expect(world.pullRequests()).toHaveLength(1);
  });
});
