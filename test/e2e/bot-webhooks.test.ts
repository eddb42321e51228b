import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BotWorld, SECRET } from "../helpers/bot-world.js";

let world: BotWorld;
let url: string;
beforeAll(async () => {
  world = await BotWorld.create();
  await world.startBot();
  url = `http://127.0.0.1:${world.bot!.port}/webhooks/hub`;
});
afterAll(() => world.close());

const sample = (name: string) => readFileSync(new URL(`../fixtures/hub-payloads/${name}`, import.meta.url), "utf8");
const post = (body: string, headers: Record<string, string>) => fetch(url, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body });
type Push = { repo: { name: string; headSha?: string }; updatedRefs: Array<{ newSha: string | null }> };
const jobCount = async () => (await world.bot!.context.queue.recent(1000)).length;

describe("POST /webhooks/hub", () => {
  it("answers 401 without X-Webhook-Secret and 403 with a wrong one, storing no job", async () => {
    const before = await jobCount();
    expect((await post(sample("repo-content-main-push.json"), {})).status).toBe(401);
    expect((await post(sample("repo-content-main-push.json"), { "X-Webhook-Secret": "guess" })).status).toBe(403);
    expect(await jobCount()).toBe(before);
  });

  it("answers 400 with the reason to malformed payloads, and never crashes", async () => {
    const headers = { "X-Webhook-Secret": SECRET };
    const bad = await post("{not json", headers);
    expect(bad.status).toBe(400);
    const wrongShape = await post(JSON.stringify({ event: { scope: "repo.content", action: "update" }, repo: { type: "model" } }), headers);
    expect(wrongShape.status).toBe(400);
    expect(((await wrongShape.json()) as { error: string }).error).toMatch(/^not a Hub webhook payload \(version 3\): repo\.name/);
    expect((await post(JSON.stringify([1, 2]), headers)).status).toBe(400);
    expect((await fetch(`http://127.0.0.1:${world.bot!.port}/healthz`)).status).toBe(200);
  });

  // Issue 7 item 3: these used to be accepted and queued, and the bot then sent its token to normalised URLs.
  it.each([
    ["a repo name with a .. segment", (p: Push) => (p.repo.name = "acme/.."), "repo.name"],
    ["a repo name that climbs out", (p: Push) => (p.repo.name = "../.."), "repo.name"],
    ["a repo name whose name is a . segment", (p: Push) => (p.repo.name = "acme/."), "repo.name"],
    ["a head sha that is not one", (p: Push) => (p.repo.headSha = "f".repeat(100_000)), "repo.headSha"],
    ["an updated ref whose sha is not one", (p: Push) => (p.updatedRefs[0]!.newSha = "main/../../otherorg"), "updatedRefs.0.newSha"],
  ])("answers 400 to %s, naming the field, and stores no job", async (_, spoil, field) => {
    const before = await jobCount();
    const payload = JSON.parse(sample("repo-content-main-push.json")) as Push;
    spoil(payload);
    const response = await post(JSON.stringify(payload), { "X-Webhook-Secret": SECRET });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toContain(`: ${field}: `);
    expect(await jobCount()).toBe(before);
  });

  it("stores the job before answering 202, and a replayed delivery creates nothing new", async () => {
    const sha = await world.pushAdapter();
    await world.idle();
    const delivery = world.hub.webhooks.deliveries.find((d) => (d.payload.updatedRefs as Array<{ newSha: string }> | undefined)?.[0]?.newSha === sha)!;
    expect(delivery.status).toBe(202);
    const jobs = await jobCount();
    const prs = world.pullRequests().length;
    // The Hub's "replay" button, and a plain duplicate delivery.
    expect(await world.hub.webhooks.replay(delivery)).toBe(200);
    const again = await post(JSON.stringify(delivery.payload), { "X-Webhook-Secret": SECRET });
    expect(((await again.json()) as { outcome: string }).outcome).toBe("duplicate");
    await world.idle();
    expect(await jobCount()).toBe(jobs);
    expect(world.pullRequests()).toHaveLength(prs);
  });

  it("ignores pull-request refs, other repo types and comments that do not mention the bot", async () => {
    const ignored = async (body: string) => ((await (await post(body, { "X-Webhook-Secret": SECRET })).json()) as { outcome: string }).outcome;
    expect(await ignored(sample("repo-content-pr-opened.recorded.json"))).toBe("ignored");
    const comment = JSON.parse(sample("discussion-comment-on-pr.json")) as { comment: { content: string } };
    comment.comment.content = "Thanks!";
    expect(await ignored(JSON.stringify(comment))).toBe("ignored");
  });
});
