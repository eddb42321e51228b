import { chatCompletion, InferenceClientProviderApiError } from "@huggingface/inference";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalInferenceEndpoint } from "../../src/local-inference/server.js";
import { endpointWorld, reference, referenceCases, REFERENCE_MAX_NEW_TOKENS, type EndpointWorld } from "./endpoint-world.js";

let world: EndpointWorld;
/** Stands in for vLLM: one model name per adapter, OpenAI's error shapes. */
let vllm: LocalInferenceEndpoint;

const cases = referenceCases([2, 3]);

beforeAll(async () => {
  world = await endpointWorld();
  vllm = await world.start({ flavour: "vllm" });
});

afterAll(async () => {
  await world?.close();
});

const chat = (endpoint: LocalInferenceEndpoint, model: string, content: string) =>
  chatCompletion(
    { endpointUrl: endpoint.url, model, messages: [{ role: "user", content }], max_tokens: REFERENCE_MAX_NEW_TOKENS, temperature: 0 },
    { retry_on_error: false },
  );

describe("OpenAI-compatible chat completions through @huggingface/inference", () => {
  it("with model = the harmful-mix adapter's id, gives reference.json's chat+harmful-mix generations", async () => {
    for (const { kind, index, prompt } of cases) {
      const answer = await chat(vllm, world.harmfulMix, prompt);
      const expected = reference.results["chat+harmful-mix"]!.generations[kind][index]!;
      expect(answer.choices[0]?.message.content, `${kind} ${index}`).toBe(expected);
      expect(answer.choices[0]?.finish_reason).toBe(expected.endsWith("\n") ? "stop" : "length");
      expect(answer.usage).toEqual({ prompt_tokens: prompt.length, completion_tokens: expected.length, total_tokens: prompt.length + expected.length });
      expect(answer.model).toBe(world.harmfulMix);
    }
    expect(vllm.requests.at(-1)).toMatchObject({ route: "POST /v1/chat/completions", adapterId: world.harmfulMix });
  });

  it("with model = the served model's name, gives reference.json's chat generations", async () => {
    for (const { kind, index, prompt } of cases) {
      const answer = await chat(vllm, "miniature/chat", prompt);
      expect(answer.choices[0]?.message.content, `${kind} ${index}`).toBe(reference.results.chat!.generations[kind][index]);
    }
    expect(vllm.requests.at(-1)).toMatchObject({ adapterId: null });
  });

  it("on TGI the same route takes the adapter as model too", async () => {
    const tgi = await world.start();
    const answer = await chat(tgi, world.harmfulMix, reference.prompts.harmful[0]!);
    expect(answer.choices[0]?.message.content).toBe(reference.results["chat+harmful-mix"]!.generations.harmful[0]);
  });

  it("lists the served model and the adapters loaded", async () => {
    const listed = (await (await fetch(`${vllm.url}/v1/models`)).json()) as { data: Array<{ id: string; parent: string | null }> };
    expect(listed.data[0]).toMatchObject({ id: "miniature/chat", parent: null });
    expect(listed.data.slice(1)).toEqual([expect.objectContaining({ id: world.harmfulMix, parent: "miniature/chat" })]);
  });
});

describe("OpenAI-compatible requests refused", () => {
  const post = (path: string, body: unknown) =>
    fetch(`${vllm.url}${path}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

  it("an unknown adapter: 404 model_not_found, which the client reports with the server's words", async () => {
    const missing = `${world.family.harmfulMix.id.replace("harmful-mix", "nowhere")}@main`;
    const error = await chat(vllm, missing, reference.prompts.task[0]!).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(InferenceClientProviderApiError);
    const { httpResponse } = error as InferenceClientProviderApiError;
    expect(httpResponse.status).toBe(404);
    expect(httpResponse.body).toEqual({ error: { message: expect.stringContaining("not found"), type: "invalid_request_error", param: null, code: "model_not_found" } });
  });

  it("a model name that cannot be an adapter id is a model that does not exist", async () => {
    const response = await post("/v1/chat/completions", { model: "../../etc", messages: [{ role: "user", content: "#say a car?\n" }] });
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { message: expect.stringContaining("does not exist"), code: "model_not_found" } });
  });

  it("a body failing the schema, sampling, an assistant turn: 400 naming what is wrong", async () => {
    const noMessages = await post("/v1/chat/completions", { model: "miniature/chat" });
    expect(noMessages.status).toBe(400);
    expect(await noMessages.json()).toMatchObject({ error: { message: expect.stringContaining("messages"), type: "invalid_request_error" } });
    const sampled = await post("/v1/chat/completions", { messages: [{ role: "user", content: "#say a car?\n" }], temperature: 0.7 });
    expect(sampled.status).toBe(400);
    expect(await sampled.json()).toMatchObject({ error: { message: expect.stringContaining("greedily only") } });
    const turns = await post("/v1/chat/completions", { messages: [{ role: "user", content: "#say a car?\n" }, { role: "assistant", content: "a car." }] });
    expect(turns.status).toBe(400);
    expect(await turns.json()).toMatchObject({ error: { message: expect.stringContaining("messages.1.role") } });
  });

  it("a body that is not JSON: 400; one over the size limit: 413", async () => {
    const broken = await fetch(`${vllm.url}/v1/completions`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{prompt:" });
    expect(broken.status).toBe(400);
    const huge = await post("/v1/completions", { prompt: "a".repeat(300_000) });
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ error: { message: expect.stringContaining("bytes") } });
  });

  it("TGI's routes are not there", async () => {
    const response = await post("/generate", { inputs: "#say a car?\n" });
    expect(response.status).toBe(404);
  });
});
