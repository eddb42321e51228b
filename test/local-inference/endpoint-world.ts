import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { LocalHub } from "../../src/local-hub/server.js";
import { HubRepoFiles } from "../../src/hub/hub-repo-files.js";
import { seedMiniatureFamily, type MiniatureFamily } from "../../src/local-inference/miniature-family.js";
import { LocalInferenceEndpoint, type LocalInferenceOptions } from "../../src/local-inference/server.js";
import { patchAdapter, type PatchedAdapter } from "../../src/pipeline/patch-adapter.js";
import type { Operator } from "../../src/projection/operator.js";
import { parseSelection } from "../../src/projection/selection.js";
import { LocalFolder } from "../../src/storage/local-folder.js";

export const MINIATURE_DIR = fileURLToPath(new URL("../fixtures/miniature/", import.meta.url));

const Generations = z.object({ harmful: z.array(z.string()), benign: z.array(z.string()), task: z.array(z.string()) });
const Reference = z.looseObject({
  prompts: Generations,
  results: z.record(z.string(), z.looseObject({ generations: Generations })),
});

/** test/fixtures/miniature/reference.json: the prompts, and what PyTorch generated for each model. */
export const reference = Reference.parse(JSON.parse(readFileSync(`${MINIATURE_DIR}reference.json`, "utf8")));

/** Prompts of every kind at `indices`, with their kind and index in reference.json (a few: each costs up to 40 forward passes). */
export function referenceCases(indices: readonly number[]) {
  return (["harmful", "benign", "task"] as const).flatMap((kind) => indices.map((index) => ({ kind, index, prompt: reference.prompts[kind][index]! })));
}

/** The reference decoding's budget of new characters ("40 new characters"; the 64 positions are the model's own). */
export const REFERENCE_MAX_NEW_TOKENS = 40;

/** A local Hub holding the miniature family, and endpoints serving miniature/chat read from it, adapters by id from it. */
export interface EndpointWorld {
  readonly hub: LocalHub;
  readonly family: MiniatureFamily;
  /** The harmful-mix adapter's id pinned to its commit, as a client names it. */
  readonly harmfulMix: string;
  /** The Hub token the endpoint reads adapters with. */
  readonly hubToken: string;
  start(options?: Partial<Omit<LocalInferenceOptions, "model" | "hub">>): Promise<LocalInferenceEndpoint>;
  close(): Promise<void>;
}

export async function endpointWorld(): Promise<EndpointWorld> {
  const hub = await new LocalHub().start();
  const reader = hub.store.addUser("endpoint-reader");
  const family = await seedMiniatureFamily(hub, MINIATURE_DIR);
  const endpoints: LocalInferenceEndpoint[] = [];
  return {
    hub,
    family,
    harmfulMix: `${family.harmfulMix.id}@${family.harmfulMix.sha}`,
    hubToken: reader.token,
    async start(options = {}) {
      const access = { hubUrl: hub.url, accessToken: reader.token };
      const endpoint = new LocalInferenceEndpoint({
        model: { id: family.chat.id, files: await HubRepoFiles.open(access, { id: family.chat.id, revision: family.chat.sha }) },
        hub: access,
        ...options,
      });
      endpoints.push(endpoint);
      return endpoint.start();
    },
    async close() {
      await Promise.all(endpoints.map((endpoint) => endpoint.close()));
      await hub.close();
    },
  };
}

/**
 * The engine's Safe LoRA variant of the miniature's harmful-mix adapter (base and chat as the pair, from the fixture
 * folders, on the CPU), for the tests and the bench that ask an endpoint about it. The caller releases it.
 */
export async function patchHarmfulMix(selection: string, operator?: Operator): Promise<PatchedAdapter> {
  const folders = { adapter: new LocalFolder(`${MINIATURE_DIR}adapter-harmful-mix`), base: new LocalFolder(`${MINIATURE_DIR}base`), aligned: new LocalFolder(`${MINIATURE_DIR}chat`) };
  return patchAdapter({
    adapter: { files: folders.adapter, revision: null },
    base: { files: folders.base, revision: null },
    aligned: { files: folders.aligned, revision: null },
    selection: parseSelection(selection),
    ...(operator ? { operator } : {}),
    executionProvider: "cpu",
  }).finally(() => Promise.all(Object.values(folders).map((folder) => folder.close())));
}
