import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { coversRepo } from "../../src/bot/coverage.js";
import { queueScans } from "../../src/bot/reconcile.js";
import { botTest, REPO, type BotTest } from "./bot-test.js";

let t: BotTest;
beforeEach(async () => {
  t = await botTest({ botConfig: "watch: [Acme, solo/one-lora]\nexcludeRepos: [acme/excluded]\n" });
  t.forge.createRepo({ repo: "acme/second", private: true });
  t.forge.createRepo({ repo: "acme/excluded" });
});
afterEach(() => t.close());

describe("queueScans (reconciliation and backfill)", () => {
  it("queues a scan of every repo's current head, private ones marked, excluded ones left out", async () => {
    expect(await queueScans(t.job, ["acme"], "reconcile")).toEqual({ repos: 2, queued: 2 });
    const jobs = await t.jobs();
    expect(jobs.map((job) => [job.kind, job.forge, job.repo, job.private, (job.payload as { reason: string }).reason]).sort()).toEqual([
      ["scan", "hub", REPO, false, "reconcile"],
      ["scan", "hub", "acme/second", true, "reconcile"],
    ]);
  });

  it("queues nothing for heads already scanned, and a scan of a head that moved", async () => {
    await queueScans(t.job, ["acme"], "reconcile");
    expect(await queueScans(t.job, ["acme"], "backfill")).toEqual({ repos: 2, queued: 0 });
    t.forge.commitFiles({ repo: REPO, files: { "README.md": "new" } });
    expect(await queueScans(t.job, ["acme"], "reconcile")).toEqual({ repos: 2, queued: 1 });
  });

  it("takes a repo id as that one repo", async () => {
    expect(await queueScans(t.job, ["acme/second"], "backfill")).toEqual({ repos: 1, queued: 1 });
  });
});

describe("coversRepo", () => {
  it("covers the owners and repos the operator watches, in any case, and nothing else", async () => {
    expect(await coversRepo(t.context, { forge: "hub", repo: "ACME/anything" })).toBe(true);
    expect(await coversRepo(t.context, { forge: "hub", repo: "solo/One-Lora" })).toBe(true);
    expect(await coversRepo(t.context, { forge: "hub", repo: "solo/other" })).toBe(false);
    expect(await coversRepo(t.context, { forge: "hub", repo: "rival/lora" })).toBe(false);
  });
});
