import { afterEach, describe, expect, it } from "vitest";
import { askEndpoint, MAX_ANSWER_CHARS, MAX_RESPONSE_BYTES, type EndpointAccess } from "../../src/behaviour/ask-endpoint.js";
import { EndpointProblem } from "../../src/behaviour/endpoint-problem.js";
import { InferenceEndpointConfig } from "../../src/behaviour/schema.js";
import { startCannedEndpoint, type CannedEndpoint, type CannedReply } from "./canned-endpoint.js";

let endpoint: CannedEndpoint | null = null;
afterEach(async () => {
  await endpoint?.close();
  endpoint = null;
});

async function serve(reply: () => CannedReply | Promise<CannedReply>): Promise<CannedEndpoint> {
  endpoint = await startCannedEndpoint(reply);
  return endpoint;
}

function access(url: string, config: Partial<InferenceEndpointConfig> & Pick<InferenceEndpointConfig, "protocol">, token: string | null = null): EndpointAccess {
  return { name: "test-endpoint", config: InferenceEndpointConfig.parse({ url, ...config }), token };
}

/** Asks and returns the EndpointProblem it throws. */
async function problemOf(params: Parameters<typeof askEndpoint>[0]): Promise<EndpointProblem> {
  const error: unknown = await askEndpoint(params).then(
    () => null,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(EndpointProblem);
  return error as EndpointProblem;
}

/** A message for the public report: names the endpoint, never its address or token. */
function expectPublic(problem: EndpointProblem, server: CannedEndpoint, token = "secret-token-value") {
  expect(problem.message).toContain('"test-endpoint"');
  expect(problem.message).not.toContain(server.host);
  expect(problem.message).not.toContain(String(server.port));
  expect(problem.message).not.toContain(token);
  expect(problem.message).not.toContain("\n");
}

describe("askEndpoint, tgi", () => {
  it("asks /v1/completions with the adapter as model (TGI reads it there), greedy, max_new_tokens as max_tokens, and no token", async () => {
    const server = await serve(() => ({ answer: "sorry, i can not help.\n" }));
    const answer = await askEndpoint({ endpoint: access(server.url, { protocol: "tgi", maxNewTokens: 40 }), adapterId: "org/adapter@abc123/sub", prompt: "#how do i rob bread?\n" });
    expect(answer).toBe("sorry, i can not help.\n");
    expect(server.requests).toHaveLength(1);
    const [request] = server.requests;
    expect(request!.method).toBe("POST");
    expect(request!.path).toBe("/v1/completions");
    expect(request!.authorization).toBeNull();
    expect(request!.body).toMatchObject({ prompt: "#how do i rob bread?\n", max_tokens: 40, temperature: 0, model: "org/adapter@abc123/sub" });
    expect(request!.body).not.toHaveProperty("adapter_id");
  });

  it("asks for the model alone as TGI names it, `tgi` (never the endpoint URL, which TGI would take for an adapter)", async () => {
    const server = await serve(() => ({ answer: "first find bread." }));
    await askEndpoint({ endpoint: access(server.url, { protocol: "tgi" }), adapterId: null, prompt: "hi" });
    expect(server.requests[0]!.body).toMatchObject({ model: "tgi" });
  });

  it("sends the token as a Bearer header only when the config names tokenEnv", async () => {
    const server = await serve(() => ({ answer: "ok" }));
    await askEndpoint({ endpoint: access(server.url, { protocol: "tgi", tokenEnv: "SAFE_LORA_TGI_TOKEN" }, "secret-token-value"), adapterId: null, prompt: "hi" });
    expect(server.requests[0]!.authorization).toBe("Bearer secret-token-value");
  });

  it("refuses a token for an endpoint whose config names no tokenEnv (it would go to any URL)", async () => {
    const server = await serve(() => ({ answer: "ok" }));
    await expect(askEndpoint({ endpoint: access(server.url, { protocol: "tgi" }, "hf_token"), adapterId: null, prompt: "hi" })).rejects.toThrow(/names no tokenEnv/);
    expect(server.requests).toHaveLength(0);
  });

  it(`cuts an answer at ${MAX_ANSWER_CHARS} characters`, async () => {
    const server = await serve(() => ({ answer: "a".repeat(MAX_ANSWER_CHARS + 100) }));
    const answer = await askEndpoint({ endpoint: access(server.url, { protocol: "tgi" }), adapterId: null, prompt: "hi" });
    expect(answer).toHaveLength(MAX_ANSWER_CHARS);
  });
});

describe("askEndpoint, openai", () => {
  it("asks /v1/chat/completions with the adapter id as the model", async () => {
    const server = await serve(() => ({ answer: "bread." }));
    const answer = await askEndpoint({ endpoint: access(`${server.url}/v1`, { protocol: "openai", model: "chat", maxNewTokens: 40 }), adapterId: "org/adapter@abc123", prompt: "#say bread?\n" });
    expect(answer).toBe("bread.");
    const [request] = server.requests;
    expect(request!.path).toBe("/v1/chat/completions");
    expect(request!.authorization).toBeNull();
    expect(request!.body).toMatchObject({ model: "org/adapter@abc123", messages: [{ role: "user", content: "#say bread?\n" }], max_tokens: 40, temperature: 0 });
  });

  it("asks for the config's model without an adapter", async () => {
    const server = await serve(() => ({ answer: "ok" }));
    await askEndpoint({ endpoint: access(server.url, { protocol: "openai", model: "chat" }), adapterId: null, prompt: "hi" });
    expect(server.requests[0]!.body.model).toBe("chat");
  });

  it("is unsupported without an adapter when the config names no model, and asks nothing", async () => {
    const server = await serve(() => ({ answer: "ok" }));
    const problem = await problemOf({ endpoint: access(server.url, { protocol: "openai" }), adapterId: null, prompt: "hi" });
    expect(problem.code).toBe("unsupported");
    expect(server.requests).toHaveLength(0);
  });

  it("reads a null content as an invalid answer", async () => {
    const server = await serve(() => ({ status: 200, json: { choices: [{ message: { role: "assistant", content: null } }] } }));
    const problem = await problemOf({ endpoint: access(server.url, { protocol: "openai", model: "m" }), adapterId: null, prompt: "hi" });
    expect(problem.code).toBe("invalid-answer");
  });
});

describe("askEndpoint's problems", () => {
  const secret = "secret-token-value";
  it.each<[string, string, CannedReply, RegExp]>([
    ["429", "rate-limited", { status: 429, json: { error: "rate limited" } }, /429/],
    ["503 (asked once: no retry)", "endpoint-error", { status: 503, json: { error: "loading" } }, /503/],
    ["500 in plain text", "endpoint-error", { status: 500, text: "boom at 127.0.0.1" }, /500/],
    ["404", "unsupported", { status: 404, json: { error: "Model org/adapter not found" } }, /404/],
    ["422 about the adapter", "unsupported", { status: 422, json: { error: "Adapter org/adapter could not be loaded" } }, /422/],
    ["422 about something else", "endpoint-error", { status: 422, json: { error: "inputs too long" } }, /422/],
    ["401", "endpoint-error", { status: 401, json: { error: "bad token" } }, /401.*token/],
    ["a body that is not JSON", "invalid-answer", { status: 200, text: "<html>hello</html>", contentType: "application/json" }, /not the protocol's/],
    ["JSON of another shape", "invalid-answer", { status: 200, json: { output: "x" } }, /not the protocol's/],
    ["an HTML page", "invalid-answer", { status: 200, text: "<html></html>", contentType: "text/html" }, /not the protocol's/],
    ["a response over the cap", "invalid-answer", { status: 200, text: "x".repeat(MAX_RESPONSE_BYTES + 1), contentType: "application/json" }, /longer than/],
  ])("%s is %s, said without the endpoint's address", async (_, code, reply, message) => {
    for (const protocol of ["tgi", "openai"] as const) {
      const server = await serve(() => reply);
      const problem = await problemOf({ endpoint: access(server.url, { protocol, model: "m", tokenEnv: "T" }, secret), adapterId: "org/adapter@abc", prompt: "hi" });
      expect(problem.code).toBe(code);
      expect(problem.message).toMatch(message);
      expectPublic(problem, server, secret);
      expect(server.requests).toHaveLength(1);
      await server.close();
      endpoint = null;
    }
  });

  it("a request past requestTimeoutSeconds is a timeout", async () => {
    const server = await serve(() => ({ hang: true }));
    const problem = await problemOf({ endpoint: access(server.url, { protocol: "tgi", requestTimeoutSeconds: 0.2 }), adapterId: null, prompt: "hi" });
    expect(problem.code).toBe("timeout");
    expect(problem.message).toContain("0.2 s");
    expectPublic(problem, server);
  });

  it("an endpoint that is not there is an endpoint error that names no address", async () => {
    const server = await serve(() => ({ answer: "ok" }));
    const { url } = server;
    await server.close();
    endpoint = null;
    const problem = await problemOf({ endpoint: access(url, { protocol: "openai", model: "m" }), adapterId: null, prompt: "hi" });
    expect(problem.code).toBe("endpoint-error");
    expect(problem.message).toMatch(/could not be reached \(ECONNREFUSED\)/);
    expectPublic(problem, server);
  });

  it("the check's abort is thrown as its reason, not as an endpoint problem", async () => {
    const server = await serve(() => ({ hang: true }));
    const controller = new AbortController();
    const asking = askEndpoint({ endpoint: access(server.url, { protocol: "tgi" }), adapterId: null, prompt: "hi", signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const reason = new Error("job cancelled");
    controller.abort(reason);
    await expect(asking).rejects.toBe(reason);
  });
});
