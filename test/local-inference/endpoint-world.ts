import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { LocalHub } from "../../src/local-hub/server.js";
import { HubRepoFiles } from "../../src/hub/hub-repo-files.js";
import { seedMiniatureFamily, type MiniatureFamily } from "../../src/local-inference/miniature-family.js";
import { LocalInferenceEndpoint, type LocalInferenceOptions } from "../../src/local-inference/server.js";

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
