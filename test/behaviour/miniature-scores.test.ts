import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { EndpointAccess } from "../../src/behaviour/ask-endpoint.js";
import { loadPromptSet } from "../../src/behaviour/load-prompt-set.js";
import { measureBehaviour, type CheckSubject } from "../../src/behaviour/measure-behaviour.js";
import { InferenceEndpointConfig } from "../../src/behaviour/schema.js";
import { HubRepoFiles } from "../../src/hub/hub-repo-files.js";
import { seedRepo, type SeedFile } from "../../src/local-hub/seed.js";
import { LocalInferenceEndpoint } from "../../src/local-inference/server.js";
import { BehaviourEvidence } from "../../src/report/behaviour-schema.js";
import { endpointWorld, MINIATURE_DIR, patchHarmfulMix, REFERENCE_MAX_NEW_TOKENS, type EndpointWorld } from "../local-inference/endpoint-world.js";

/**
 * The behavioural check end to end on the miniature family: the real client asks a LocalInferenceEndpoint (reading
 * adapters by id from a local Hub) through both protocols, and its scores and generations equal what PyTorch
 * computed (test/fixtures/miniature/reference.json) for the models without and with each adapter, and for the
 * Safe LoRA variants this project's engine makes.
 */

const Generations = z.object({ harmful: z.array(z.string()), benign: z.array(z.string()), task: z.array(z.string()) });
const Scores = z.object({ harmful_refused: z.number(), benign_answered: z.number(), task_accuracy: z.number() });
const Result = z.object({ scores: Scores, generations: Generations });
const Reference = z.object({
  results: z.record(z.string(), Result),
  safe_lora: z.object({
    cosines: z.record(z.string(), z.number()),
    variants: z.record(z.string(), Result.extend({ threshold: z.number(), projected: z.array(z.string()) })),
  }),
});
const reference = Reference.parse(JSON.parse(readFileSync(join(MINIATURE_DIR, "reference.json"), "utf8")));
const promptSet = loadPromptSet("test/fixtures/miniature-prompt-set.json");
const SELECTIONS = Object.keys(reference.safe_lora.variants);
const VARIANTS_REPO = "acme/miniature-harmful-mix-safe-lora";
/** A variant's folder in VARIANTS_REPO: the selection without its colon. */
const variantFolder = (selection: string) => selection.replace(":", "-");

let world: EndpointWorld;
let variantsSha: string;
/** What the engine reported per selection: the modules it projected and every module's cosine. */
const patched = new Map<string, { projected: string[]; cosines: Record<string, number | null> }>();
const endpoints = new Map<string, LocalInferenceEndpoint>();
/** Endpoints serving miniature/base (no adapter), by protocol: the reference's `base` result. */
const baseEndpoints = new Map<string, LocalInferenceEndpoint>();

beforeAll(async () => {
  world = await endpointWorld();
  const files: SeedFile[] = [];
  for (const selection of SELECTIONS) {
    const variant = await patchHarmfulMix(selection);
    try {
      const { modules } = variant.report;
      patched.set(selection, { projected: modules.filter((module) => module.projected).map((module) => module.name), cosines: Object.fromEntries(modules.map((module) => [module.name, module.cosine])) });
      files.push(
        { path: `${variantFolder(selection)}/adapter_model.safetensors`, data: Buffer.from(await variant.weights.arrayBuffer()) },
        { path: `${variantFolder(selection)}/adapter_config.json`, data: variant.configText },
      );
    } finally {
      await variant.release();
    }
  }
  variantsSha = (await seedRepo(world.hub, VARIANTS_REPO, files)).commit.id;
  endpoints.set("tgi", await world.start({ flavour: "tgi" }));
  endpoints.set("openai", await world.start({ flavour: "vllm" }));
  const hubAccess = { hubUrl: world.hub.url, accessToken: world.hubToken };
  for (const [protocol, flavour] of [["tgi", "tgi"], ["openai", "vllm"]] as const) {
    const files = await HubRepoFiles.open(hubAccess, { id: world.family.base.id, revision: world.family.base.sha });
    baseEndpoints.set(protocol, await new LocalInferenceEndpoint({ model: { id: world.family.base.id, files }, hub: hubAccess, flavour }).start());
  }
}, 300_000);

afterAll(async () => {
  await Promise.all([...baseEndpoints.values()].map((endpoint) => endpoint.close()));
  await world?.close();
});

function access(protocol: "tgi" | "openai", config: Partial<InferenceEndpointConfig> = {}): EndpointAccess {
  const endpoint = endpoints.get(protocol)!;
  return {
    name: `miniature-${protocol}`,
    config: InferenceEndpointConfig.parse({ url: endpoint.url, protocol, model: world.family.chat.id, maxNewTokens: REFERENCE_MAX_NEW_TOKENS, timeoutSeconds: 600, requestTimeoutSeconds: 120, ...config }),
    token: null,
  };
}

const subject = (role: CheckSubject["role"], adapterId: string | null, revision: string): CheckSubject => ({ role, adapterId, revision, publicId: adapterId ?? world.family.chat.id });

describe("the engine's Safe LoRA variants of adapter-harmful-mix", () => {
  it.each(SELECTIONS)("%s projects the reference's modules, on the reference's cosines", (selection) => {
    const variant = patched.get(selection)!;
    expect(variant.projected.sort()).toEqual([...reference.safe_lora.variants[selection]!.projected].sort());
    expect(variant.cosines).toEqual(reference.safe_lora.cosines);
  });
});

describe.each(["tgi", "openai"] as const)("measureBehaviour through %s on the miniature", (protocol) => {
  /** Each model the reference measured: which adapter the endpoint is asked for, and the reference's result. */
  const models = (): [string, CheckSubject, z.infer<typeof Result>][] => [
    ["chat", subject("original", null, world.family.chat.sha), reference.results.chat!],
    ["chat+harmful-mix", subject("original", `${world.family.harmfulMix.id}@${world.family.harmfulMix.sha}`, world.family.harmfulMix.sha), reference.results["chat+harmful-mix"]!],
    ["chat+task-only", subject("original", `${world.family.taskOnly.id}@${world.family.taskOnly.sha}`, world.family.taskOnly.sha), reference.results["chat+task-only"]!],
    ...SELECTIONS.map((selection): [string, CheckSubject, z.infer<typeof Result>] => [
      `safe-lora ${selection}`,
      subject("patched", `${VARIANTS_REPO}@${variantsSha}/${variantFolder(selection)}`, variantsSha),
      reference.safe_lora.variants[selection]!,
    ]),
  ];

  it("base (miniature/base served alone): the reference's generations and scores", async () => {
    const base = baseEndpoints.get(protocol)!;
    const endpoint = { ...access(protocol, { url: base.url, model: world.family.base.id }), name: `miniature-base-${protocol}` };
    const { evidence, generations } = await measureBehaviour({ endpoint, promptSet, subjects: [{ role: "original", adapterId: null, revision: world.family.base.sha, publicId: world.family.base.id }] });
    if (evidence.status !== "measured") throw new Error(`not measured: ${evidence.reason}`);
    const expected = reference.results.base!;
    expect(generations?.original).toEqual(expected.generations);
    expect(evidence.subjects[0]!.scores).toEqual({ harmfulRefused: expected.scores.harmful_refused, benignAnswered: expected.scores.benign_answered, taskAccuracy: expected.scores.task_accuracy });
  }, 300_000);

  it.each(["chat", "chat+harmful-mix", "chat+task-only", ...SELECTIONS.map((selection) => `safe-lora ${selection}`)])(
    "%s: the reference's generations and scores",
    async (name) => {
      const [, asked, expected] = models().find(([model]) => model === name)!;
      const { evidence, generations } = await measureBehaviour({ endpoint: access(protocol), promptSet, subjects: [asked] });
      expect(BehaviourEvidence.parse(evidence)).toEqual(evidence);
      if (evidence.status !== "measured") throw new Error(`not measured: ${evidence.reason}`);
      expect(generations?.[asked.role]).toEqual(expected.generations);
      expect(evidence.subjects).toEqual([
        {
          role: asked.role,
          adapterId: asked.publicId,
          revision: asked.revision,
          scores: { harmfulRefused: expected.scores.harmful_refused, benignAnswered: expected.scores.benign_answered, taskAccuracy: expected.scores.task_accuracy },
        },
      ]);
      expect(evidence.prompts).toMatchObject({ set: "miniature", harmful: 19, benign: 21, task: 16, categories: 1, maxNewTokens: REFERENCE_MAX_NEW_TOKENS });
      expect(evidence.endpoint).toEqual({ name: `miniature-${protocol}`, protocol });
      // Every request named the model asked for, and none carried a token.
      const asks = endpoints.get(protocol)!.requests.slice(-(19 + 21 + 16));
      expect(new Set(asks.map((request) => request.adapterId))).toEqual(new Set([asked.adapterId]));
      expect(asks.some((request) => request.authorized)).toBe(false);
    },
    300_000,
  );
});

describe("measureBehaviour on a miniature endpoint that cannot answer", () => {
  let faulty: LocalInferenceEndpoint;
  beforeAll(async () => {
    faulty = await world.start({ flavour: "tgi" });
  });

  const check = (config: Partial<InferenceEndpointConfig>, asked: CheckSubject = subject("original", null, world.family.chat.sha)) =>
    measureBehaviour({
      endpoint: { name: "miniature-faulty", config: InferenceEndpointConfig.parse({ url: faulty.url, protocol: "tgi", maxNewTokens: REFERENCE_MAX_NEW_TOKENS, ...config }), token: null },
      promptSet,
      subjects: [asked],
    });

  /** A not-measured evidence with `code` whose reason names the endpoint and neither its host nor its port. */
  function expectNotMeasured(evidence: BehaviourEvidence, code: string) {
    expect(BehaviourEvidence.parse(evidence)).toEqual(evidence);
    if (evidence.status !== "not-measured") throw new Error("measured");
    expect(evidence.code).toBe(code);
    expect(evidence.reason).toContain('endpoint "miniature-faulty"');
    const { hostname, port } = new URL(faulty.url);
    expect(evidence.reason).not.toContain(hostname);
    expect(evidence.reason).not.toContain(port);
    return evidence.reason;
  }

  it("one that hangs is not measured, code timeout, once the check's timeoutSeconds have passed", async () => {
    faulty.faults.hang = true;
    try {
      const { evidence, generations } = await check({ timeoutSeconds: 1, requestTimeoutSeconds: 600 });
      expect(generations).toBeNull();
      expect(expectNotMeasured(evidence, "timeout")).toMatch(/within the check's 1 s \(0 answered\)/);
    } finally {
      faulty.faults.hang = false;
    }
  });

  it("429 is rate-limited", async () => {
    faulty.faults.fail = { status: 429, times: 1 };
    const { evidence } = await check({ concurrency: 1 });
    expect(expectNotMeasured(evidence, "rate-limited")).toContain("429");
    expect(faulty.faults.fail).toBeNull();
  });

  it("503 is an endpoint error, asked once (the client's retry is off)", async () => {
    const before = faulty.requests.length;
    faulty.faults.fail = { status: 503, times: 1 };
    const { evidence } = await check({ concurrency: 1 });
    expectNotMeasured(evidence, "endpoint-error");
    expect(faulty.requests.length - before).toBe(1);
  });

  it("an adapter the endpoint cannot find on the Hub is unsupported", async () => {
    const { evidence } = await check({ concurrency: 1 }, subject("patched", `${VARIANTS_REPO}@${variantsSha}/no-such-folder`, variantsSha));
    expect(expectNotMeasured(evidence, "unsupported")).toMatch(/^asking for the patched model: /);
  });
});
