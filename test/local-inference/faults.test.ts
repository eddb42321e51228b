import { InferenceClientProviderApiError, textGeneration } from "@huggingface/inference";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalInferenceEndpoint } from "../../src/local-inference/server.js";
import { until } from "../helpers/until.js";
import { endpointWorld, reference, type EndpointWorld } from "./endpoint-world.js";

const TOKEN = "endpoint-secret";
let world: EndpointWorld;
let endpoint: LocalInferenceEndpoint;
const prompt = reference.prompts.task[0]!;
const expected = reference.results.chat!.generations.task[0]!;

beforeAll(async () => {
  world = await endpointWorld();
  endpoint = await world.start({ token: TOKEN });
});

afterAll(async () => {
  await world?.close();
});

const ask = (options: { signal?: AbortSignal; accessToken?: string | null; adapterId?: string } = {}) =>
  textGeneration(
    {
      endpointUrl: endpoint.url,
      ...(options.accessToken === null ? {} : { accessToken: options.accessToken ?? TOKEN }),
      model: options.adapterId ?? "tgi",
      inputs: prompt,
      parameters: { max_new_tokens: 40 },
    },
    { retry_on_error: false, ...(options.signal ? { signal: options.signal } : {}) },
  );

const failure = (promise: Promise<unknown>) => promise.then(() => expect.fail("expected the request to fail"), (error: unknown) => error);

describe("faults the tests set", () => {
  it("hang: the client's abort signal rejects it with AbortError, and the endpoint still answers the next request", async () => {
    endpoint.faults.hang = true;
    try {
      const abort = new AbortController();
      const asked = endpoint.requests.length;
      const pending = failure(ask({ signal: abort.signal }));
      await until(() => endpoint.requests.length, (count) => count > asked);
      abort.abort();
      expect(await pending).toMatchObject({ name: "AbortError" });
      // The endpoint let go of the hung request when its client went away, not only at close.
      await until(() => endpoint.requests[asked]!.outcome, (outcome) => outcome !== null);
      expect(endpoint.requests[asked]).toMatchObject({ outcome: "abandoned" });
    } finally {
      endpoint.faults.hang = false;
    }
    expect((await ask()).generated_text).toBe(expected);
  });

  it("fail 503 with retry_on_error false: one request, an error carrying the status and TGI's error shape", async () => {
    endpoint.faults.fail = { status: 503, times: 1 };
    const asked = endpoint.requests.length;
    const error = await failure(ask());
    expect(error).toBeInstanceOf(InferenceClientProviderApiError);
    expect((error as InferenceClientProviderApiError).message).toContain("fault set by the test: answering 503");
    expect((error as InferenceClientProviderApiError).httpResponse).toMatchObject({ status: 503, body: { error_type: "unhealthy" } });
    expect(endpoint.requests.slice(asked)).toEqual([expect.objectContaining({ outcome: 503 })]);
    expect(endpoint.faults.fail).toBeNull();
    expect((await ask()).generated_text).toBe(expected);
  });

  it("fail 429 twice: the next two requests are refused as overloaded, the third answered", async () => {
    endpoint.faults.fail = { status: 429, times: 2 };
    for (let i = 0; i < 2; i++) expect(await failure(ask())).toMatchObject({ httpResponse: { status: 429, body: { error_type: "overloaded" } } });
    expect((await ask()).generated_text).toBe(expected);
  });

  it("delay: a delayed request is held while one sent after it is answered", async () => {
    endpoint.faults.delayMs = 600_000;
    const abort = new AbortController();
    const asked = endpoint.requests.length;
    const held = failure(ask({ signal: abort.signal }));
    try {
      await until(() => endpoint.requests.length, (count) => count > asked);
      endpoint.faults.delayMs = 0;
      expect((await ask()).generated_text).toBe(expected);
      expect(endpoint.requests[asked]).toMatchObject({ outcome: null });
    } finally {
      endpoint.faults.delayMs = 0;
      abort.abort();
    }
    expect(await held).toMatchObject({ name: "AbortError" });
  });
});

describe("refusals", () => {
  it("no token, or a wrong one: 401 in TGI's error shape, and the request is noted as unauthorized", async () => {
    expect(await failure(ask({ accessToken: null }))).toMatchObject({ httpResponse: { status: 401, body: { error_type: "authentication" } } });
    expect(endpoint.requests.at(-1)).toMatchObject({ authorized: false });
    const wrong = await failure(ask({ accessToken: "hf_not-the-token" }));
    expect(wrong).toMatchObject({ message: expect.stringContaining("not this endpoint's"), httpResponse: { status: 401 } });
    expect(endpoint.requests.at(-1)).toMatchObject({ authorized: true });
  });

  it("an unknown adapter, a missing folder: 422 saying what was not found", async () => {
    const unknown = await failure(ask({ adapterId: "acme/no-such-lora@main" }));
    expect(unknown).toMatchObject({ message: expect.stringContaining("acme/no-such-lora"), httpResponse: { status: 422, body: { error_type: "validation" } } });
    const folder = await failure(ask({ adapterId: `${world.harmfulMix}/no/folder` }));
    expect(folder).toMatchObject({ message: expect.stringContaining("no/folder"), httpResponse: { status: 422 } });
  });

  it("an adapter id whose parts are unsafe is refused before any Hub request", async () => {
    const before = world.hub.requests.length;
    for (const id of ["acme/x@main/../../other", "../x@main", "acme/x@main//x", "acme/x@..%2F..", "acme/x@ma%in"]) {
      expect(await failure(ask({ adapterId: id })), id).toMatchObject({ httpResponse: { status: 422, body: { error: expect.stringContaining("adapter id") } } });
    }
    expect(world.hub.requests.length).toBe(before);
  });

  it("a body failing TGI's schema: 422 naming the field", async () => {
    const response = await fetch(`${endpoint.url}/generate`, {
      method: "POST",
      headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ inputs: prompt, parameters: { max_new_tokens: -1 } }),
    });
    expect(response.status).toBe(422);
    expect(await response.json()).toEqual({ error: expect.stringContaining("parameters.max_new_tokens"), error_type: "validation" });
  });
});
