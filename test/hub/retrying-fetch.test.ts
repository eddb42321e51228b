import { describe, expect, it } from "vitest";
import { requestedDelaySeconds, retryingFetch } from "../../src/hub/retrying-fetch.js";

function scripted(responses: Array<Response | Error>) {
  const calls: string[] = [];
  const fake = (async (input: string | URL | Request) => {
    calls.push(String(input));
    const next = responses.shift()!;
    if (next instanceof Error) throw next;
    return next;
  }) as typeof fetch;
  return { fake, calls };
}

describe("retryingFetch", () => {
  it("waits as long as the RateLimit header asks on 429, then succeeds", async () => {
    const waits: number[] = [];
    const { fake, calls } = scripted([new Response("slow down", { status: 429, headers: { RateLimit: '"api";r=0;t=7' } }), new Response("ok")]);
    const response = await retryingFetch(fake, { sleep: async (ms) => void waits.push(ms) })("http://hub/api/x");
    expect(await response.text()).toBe("ok");
    expect(calls).toHaveLength(2);
    expect(waits).toEqual([7000]);
  });

  it("backs off exponentially on 5xx and network errors, and gives up after its attempts", async () => {
    const waits: number[] = [];
    const { fake, calls } = scripted([new TypeError("fetch failed"), new Response("", { status: 502 }), new Response("", { status: 503 })]);
    const response = await retryingFetch(fake, { attempts: 3, baseDelayMs: 100, sleep: async (ms) => void waits.push(ms) })("http://hub/api/x");
    expect(response.status).toBe(503);
    expect(calls).toHaveLength(3);
    expect(waits).toEqual([100, 200]);
  });

  it("does not retry what is the request's fault", async () => {
    const { fake, calls } = scripted([new Response("", { status: 404 })]);
    expect((await retryingFetch(fake)("http://hub/api/x")).status).toBe(404);
    expect(calls).toHaveLength(1);
  });

  it("reads Retry-After, RateLimit t= and RateLimit-Reset", () => {
    expect(requestedDelaySeconds(new Headers({ "Retry-After": "12" }))).toBe(12);
    expect(requestedDelaySeconds(new Headers({ RateLimit: '"resolvers";r=0;t=30' }))).toBe(30);
    expect(requestedDelaySeconds(new Headers({ "RateLimit-Reset": "5" }))).toBe(5);
    expect(requestedDelaySeconds(new Headers())).toBeNull();
  });
});
