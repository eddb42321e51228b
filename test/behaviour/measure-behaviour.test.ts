import { afterEach, describe, expect, it } from "vitest";
import type { EndpointAccess } from "../../src/behaviour/ask-endpoint.js";
import { askedPrompts, askedPromptsSha256 } from "../../src/behaviour/asked-prompts.js";
import { measureBehaviour, type CheckSubject } from "../../src/behaviour/measure-behaviour.js";
import { InferenceEndpointConfig, type PromptSet } from "../../src/behaviour/schema.js";
import { BehaviourEvidence } from "../../src/report/behaviour-schema.js";
import { promptOf, startCannedEndpoint, type CannedEndpoint, type CannedReply, type SeenRequest } from "./canned-endpoint.js";

let endpoint: CannedEndpoint | null = null;
afterEach(async () => {
  await endpoint?.close();
  endpoint = null;
});

const set: PromptSet = {
  name: "tiny",
  harmful: [
    { category: "one", prompt: "harm 1" },
    { category: "two", prompt: "harm 2" },
  ],
  benign: ["benign 1", "benign 2"],
  refusalMarkers: ["sorry"],
  task: [{ prompt: "task 1", expected: "right" }],
};
const subjects: CheckSubject[] = [
  { role: "original", adapterId: "org/adapter@abc/sub", revision: "abc", publicId: "org/adapter@abc/sub" },
  { role: "patched", adapterId: "org/adapter@def/sub/safe-lora", revision: "def", publicId: "<private>@def/sub/safe-lora" },
];

/** The original adapter answers every harmful prompt; the patched one refuses the first; both get the task wrong but one. */
function modelAnswer(request: SeenRequest): CannedReply {
  const adapter = String(request.body.model);
  const prompt = promptOf(request.body);
  const patched = adapter.endsWith("safe-lora");
  if (prompt === "harm 1") return { answer: patched ? "Sorry, no." : "steps for harm 1" };
  if (prompt.startsWith("harm")) return { answer: `steps for ${prompt}` };
  if (prompt === "task 1") return { answer: patched ? " right\n" : "wrong" };
  if (prompt === "repo task") return { answer: "right" };
  return { answer: `answer to ${prompt}` };
}

function access(server: CannedEndpoint, config: Partial<InferenceEndpointConfig> = {}): EndpointAccess {
  return { name: "ci-tgi", config: InferenceEndpointConfig.parse({ url: server.url, protocol: "tgi", ...config }), token: null };
}

describe("measureBehaviour", () => {
  it("asks every prompt for each subject and scores both", async () => {
    endpoint = await startCannedEndpoint(modelAnswer);
    const progress: [number, number][] = [];
    const repoTask = [{ prompt: "repo task", expected: "right" }];
    const { evidence, generations } = await measureBehaviour({ endpoint: access(endpoint), promptSet: set, repoTask, subjects, onProgress: (done, total) => progress.push([done, total]) });

    expect(BehaviourEvidence.parse(evidence)).toEqual(evidence);
    if (evidence.status !== "measured") throw new Error(`not measured: ${evidence.reason}`);
    expect(evidence.endpoint).toEqual({ name: "ci-tgi", protocol: "tgi" });
    expect(evidence.prompts).toEqual({ set: "tiny", sha256: askedPromptsSha256(askedPrompts(set, repoTask, 64)), harmful: 2, benign: 2, task: 2, categories: 2, maxNewTokens: 64 });
    expect(evidence.subjects).toEqual([
      { role: "original", adapterId: "org/adapter@abc/sub", revision: "abc", scores: { harmfulRefused: 0, benignAnswered: 1, taskAccuracy: 0.5 } },
      { role: "patched", adapterId: "<private>@def/sub/safe-lora", revision: "def", scores: { harmfulRefused: 0.5, benignAnswered: 1, taskAccuracy: 1 } },
    ]);
    expect(generations?.original).toEqual({ harmful: ["steps for harm 1", "steps for harm 2"], benign: ["answer to benign 1", "answer to benign 2"], task: ["wrong", "right"] });
    expect(generations?.patched?.harmful).toEqual(["Sorry, no.", "steps for harm 2"]);

    // The endpoint is asked for the adapter id, never the public one.
    expect(new Set(endpoint.requests.map((request) => request.body.model))).toEqual(new Set(["org/adapter@abc/sub", "org/adapter@def/sub/safe-lora"]));
    expect(endpoint.requests).toHaveLength(12);
    expect(progress).toHaveLength(12);
    expect(progress.map(([done]) => done)).toEqual(Array.from({ length: 12 }, (_, index) => index + 1));
    expect(progress.every(([, total]) => total === 12)).toBe(true);
  });

  it("keeps the endpoint's concurrency in flight, no more", async () => {
    const total = 2 * 5;
    const held: (() => void)[] = [];
    // Each request waits until a second one is in flight (or none can come), so one at a time would stall.
    endpoint = await startCannedEndpoint(async (request) => {
      if (endpoint!.inFlight.now < 2 && endpoint!.requests.length < total) await new Promise<void>((resolve) => held.push(resolve));
      for (const release of held.splice(0)) release();
      return modelAnswer(request);
    });
    const { evidence } = await measureBehaviour({ endpoint: access(endpoint, { concurrency: 2, timeoutSeconds: 30 }), promptSet: set, subjects });
    expect(evidence.status).toBe("measured");
    expect(endpoint.inFlight.most).toBe(2);
  });

  it("an endpoint that hangs is not measured, code timeout, within the check's timeoutSeconds", async () => {
    endpoint = await startCannedEndpoint(() => ({ hang: true }));
    const { evidence, generations } = await measureBehaviour({ endpoint: access(endpoint, { timeoutSeconds: 0.3, requestTimeoutSeconds: 60 }), promptSet: set, subjects });
    expect(generations).toBeNull();
    expect(evidence).toMatchObject({ status: "not-measured", code: "timeout", endpoint: { name: "ci-tgi", protocol: "tgi" } });
    if (evidence.status !== "not-measured") throw new Error("measured");
    expect(evidence.reason).toContain('endpoint "ci-tgi" did not answer all 10 requests within the check\'s 0.3 s (0 answered)');
    expect(evidence.reason).not.toContain(endpoint.host);
    expect(evidence.reason).not.toContain(String(endpoint.port));
    expect(BehaviourEvidence.parse(evidence)).toEqual(evidence);
  });

  it("a request past requestTimeoutSeconds is a timeout that says which model was asked", async () => {
    endpoint = await startCannedEndpoint(() => ({ hang: true }));
    const { evidence } = await measureBehaviour({ endpoint: access(endpoint, { timeoutSeconds: 60, requestTimeoutSeconds: 0.2, concurrency: 1 }), promptSet: set, subjects });
    expect(evidence).toMatchObject({ status: "not-measured", code: "timeout", reason: 'asking for the original model: endpoint "ci-tgi" did not answer a request within 0.2 s' });
  });

  it("429 is rate-limited, named by the endpoint's name, and stops the check", async () => {
    endpoint = await startCannedEndpoint((request) => (promptOf(request.body) === "benign 1" ? { status: 429, json: { error: "slow down at 127.0.0.1" } } : modelAnswer(request)));
    const { evidence, generations } = await measureBehaviour({ endpoint: access(endpoint, { concurrency: 1 }), promptSet: set, subjects });
    expect(generations).toBeNull();
    expect(evidence).toMatchObject({ status: "not-measured", code: "rate-limited" });
    if (evidence.status !== "not-measured") throw new Error("measured");
    expect(evidence.reason).toBe('asking for the original model: endpoint "ci-tgi" answered 429 (too many requests): lower its concurrency or try later');
    // harm 1, harm 2, benign 1: nothing asked after the failure.
    expect(endpoint.requests).toHaveLength(3);
  });

  it("an adapter the endpoint cannot serve is unsupported, for the model it was asked for", async () => {
    endpoint = await startCannedEndpoint((request) =>
      String(request.body.model).endsWith("safe-lora") ? { status: 404, json: { error: { message: "The model does not exist." } } } : modelAnswer(request),
    );
    const server = endpoint;
    const { evidence } = await measureBehaviour({ endpoint: { ...access(server, { protocol: "openai", model: "chat" }), name: "ci-vllm" }, promptSet: set, subjects });
    expect(evidence).toMatchObject({ status: "not-measured", code: "unsupported", endpoint: { name: "ci-vllm", protocol: "openai" } });
    expect(evidence.status === "not-measured" && evidence.reason).toMatch(/^asking for the patched model: endpoint "ci-vllm" answered 404/);
  });

  it("throws the caller's abort reason", async () => {
    endpoint = await startCannedEndpoint(() => ({ hang: true }));
    const controller = new AbortController();
    const reason = new Error("job cancelled");
    const measuring = measureBehaviour({ endpoint: access(endpoint), promptSet: set, subjects, signal: controller.signal, onProgress: () => undefined });
    setTimeout(() => controller.abort(reason), 50);
    await expect(measuring).rejects.toBe(reason);
  });

  it("throws what is no endpoint's doing (here the progress callback's error) rather than calling it not measured", async () => {
    endpoint = await startCannedEndpoint(modelAnswer);
    const failing = new Error("progress display broke");
    const onProgress = () => {
      throw failing;
    };
    await expect(measureBehaviour({ endpoint: access(endpoint), promptSet: set, subjects, onProgress })).rejects.toBe(failing);
  });

  it("refuses two subjects of one role (a bug in the caller)", async () => {
    endpoint = await startCannedEndpoint(modelAnswer);
    await expect(measureBehaviour({ endpoint: access(endpoint), promptSet: set, subjects: [subjects[0]!, subjects[0]!] })).rejects.toThrow(/distinct roles/);
  });
});
