import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADAPTER_CACHE_SIZE } from "../../src/local-inference/adapter-cache.js";
import { folderFiles, seedRepo } from "../../src/local-hub/seed.js";
import type { LocalInferenceEndpoint } from "../../src/local-inference/server.js";
import { endpointWorld, MINIATURE_DIR, reference, type EndpointWorld } from "./endpoint-world.js";

let world: EndpointWorld;
let endpoint: LocalInferenceEndpoint;
const task = reference.prompts.task[0]!;
// Where the two adapters answer differently (harmful-mix with steps, task-only with something else).
const harmful = reference.prompts.harmful[0]!;

beforeAll(async () => {
  world = await endpointWorld();
  endpoint = await world.start();
});

afterAll(async () => {
  await world?.close();
});

async function generate(adapterId: string, prompt: string, maxNewTokens = 40): Promise<string> {
  const response = await fetch(`${endpoint.url}/generate`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ inputs: prompt, parameters: { adapter_id: adapterId, max_new_tokens: maxNewTokens } }),
  });
  expect(response.status, await response.clone().text()).toBe(200);
  return ((await response.json()) as { generated_text: string }).generated_text;
}

const loadedAdapters = async () => ((await (await fetch(`${endpoint.url}/v1/models`)).json()) as { data: Array<{ id: string }> }).data.slice(1).map((model) => model.id);

describe("adapters by id", () => {
  it("an id naming a branch follows a push to it; one naming a commit keeps answering from that commit", async () => {
    const repo = "acme/moving-lora";
    const first = await seedRepo(world.hub, repo, await folderFiles(join(MINIATURE_DIR, "adapter-harmful-mix")));
    expect(await generate(`${repo}@main`, harmful)).toBe(reference.results["chat+harmful-mix"]!.generations.harmful[0]);
    await seedRepo(world.hub, repo, await folderFiles(join(MINIATURE_DIR, "adapter-task-only")));
    expect(await generate(`${repo}@main`, harmful)).toBe(reference.results["chat+task-only"]!.generations.harmful[0]);
    expect(await generate(`${repo}@${first.commit.id}`, harmful)).toBe(reference.results["chat+harmful-mix"]!.generations.harmful[0]);
  });

  it(`keeps the ${ADAPTER_CACHE_SIZE} most recently used adapters loaded, and loads an evicted one again when asked`, async () => {
    const repo = "acme/many-loras";
    const folders = Array.from({ length: ADAPTER_CACHE_SIZE + 1 }, (_, index) => `v${index}`);
    const files = (await Promise.all(folders.map((folder) => folderFiles(join(MINIATURE_DIR, "adapter-harmful-mix"), folder)))).flat();
    const { commit } = await seedRepo(world.hub, repo, files);
    const ids = folders.map((folder) => `${repo}@${commit.id}/${folder}`);
    for (const id of ids) await generate(id, task, 1);
    const loaded = await loadedAdapters();
    expect(loaded).toHaveLength(ADAPTER_CACHE_SIZE);
    expect(loaded).not.toContain(ids[0]);
    expect(loaded).toContain(ids.at(-1));
    expect(await generate(ids[0]!, task)).toBe(reference.results["chat+harmful-mix"]!.generations.task[0]);
    expect(await loadedAdapters()).toContain(ids[0]);
  });
});
