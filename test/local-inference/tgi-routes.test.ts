import { textGeneration } from "@huggingface/inference";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalInferenceEndpoint } from "../../src/local-inference/server.js";
import { endpointWorld, reference, referenceCases, REFERENCE_MAX_NEW_TOKENS, type EndpointWorld } from "./endpoint-world.js";

let world: EndpointWorld;
let endpoint: LocalInferenceEndpoint;

const cases = referenceCases([0, 1]);

beforeAll(async () => {
  world = await endpointWorld();
  endpoint = await world.start();
});

afterAll(async () => {
  await world?.close();
});

/** As the behavioural check asks TGI: the client posts to /v1/completions, with the adapter (or `tgi`) as `model`. */
const ask = (prompt: string, model = "tgi") =>
  textGeneration(
    { endpointUrl: endpoint.url, model, inputs: prompt, parameters: { max_new_tokens: REFERENCE_MAX_NEW_TOKENS, temperature: 0, return_full_text: false } },
    { retry_on_error: false },
  );

describe("TGI text generation through @huggingface/inference", () => {
  it("with model = the harmful-mix adapter on the Hub, gives reference.json's chat+harmful-mix generations", async () => {
    for (const { kind, index, prompt } of cases) {
      const answer = await ask(prompt, world.harmfulMix);
      expect(answer.generated_text, `${kind} ${index}`).toBe(reference.results["chat+harmful-mix"]!.generations[kind][index]);
    }
    expect(endpoint.requests.at(-1)).toMatchObject({ route: "POST /v1/completions", adapterId: world.harmfulMix, authorized: false, promptChars: cases.at(-1)!.prompt.length });
  });

  it("without an adapter, gives reference.json's chat generations", async () => {
    for (const { kind, index, prompt } of cases) {
      const answer = await ask(prompt);
      expect(answer.generated_text, `${kind} ${index}`).toBe(reference.results.chat!.generations[kind][index]);
    }
    expect(endpoint.requests.at(-1)).toMatchObject({ adapterId: null });
  });

  it("an adapter named by branch is pinned to the branch's commit and answers the same", async () => {
    const prompt = reference.prompts.harmful[0]!;
    const answer = await ask(prompt, `${world.family.harmfulMix.id}@main`);
    expect(answer.generated_text).toBe(reference.results["chat+harmful-mix"]!.generations.harmful[0]);
  });
});

describe("TGI's own routes", () => {
  const post = (path: string, body: unknown) =>
    fetch(`${endpoint.url}${path}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

  it("POST /generate answers {generated_text, details} with the stop sequence kept, as TGI does", async () => {
    const prompt = reference.prompts.harmful[0]!;
    const expected = reference.results["chat+harmful-mix"]!.generations.harmful[0]!;
    const response = await post("/generate", { inputs: prompt, parameters: { adapter_id: world.harmfulMix, max_new_tokens: REFERENCE_MAX_NEW_TOKENS, stop: ["then"], details: true } });
    expect(response.status).toBe(200);
    const cut = expected.slice(0, expected.indexOf("then") + "then".length);
    expect(await response.json()).toEqual({ generated_text: cut, details: { finish_reason: "stop_sequence", generated_tokens: cut.length, seed: null, prefill: [], tokens: [] } });
  });

  it("POST / (the compat route) answers a one-element array; return_full_text puts the prompt first", async () => {
    const prompt = reference.prompts.benign[0]!;
    const response = await post("/", { inputs: prompt, parameters: { max_new_tokens: 5, return_full_text: true } });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual([{ generated_text: prompt + reference.results.chat!.generations.benign[0]!.slice(0, 5) }]);
  });

  it("do_sample true is refused with 422 in TGI's error shape; so is a character outside the vocabulary", async () => {
    const sampled = await post("/generate", { inputs: "#say a car?\n", parameters: { do_sample: true } });
    expect(sampled.status).toBe(422);
    expect(await sampled.json()).toEqual({ error: expect.stringContaining("greedily only"), error_type: "validation" });
    const foreign = await post("/generate", { inputs: "#SAY A CAR?\n" });
    expect(foreign.status).toBe(422);
    expect(await foreign.json()).toMatchObject({ error_type: "validation" });
  });

  it("GET /info names the served model; GET /health answers 200", async () => {
    const info = await fetch(`${endpoint.url}/info`);
    expect(await info.json()).toMatchObject({ model_id: "miniature/chat", router: "text-generation-router" });
    expect((await fetch(`${endpoint.url}/health`)).status).toBe(200);
  });
});
