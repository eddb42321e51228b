import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createBotContext } from "../../src/app/create-bot-context.js";
import { commandKey } from "../../src/bot/command-job.js";
import type { BotContext } from "../../src/bot/context.js";
import { legacyJobKey } from "../../src/bot/legacy-job-keys.js";
import { commandPatchKey, patchKey } from "../../src/bot/patch-job.js";
import { jobHandler } from "../../src/bot/run-job.js";
import { scanJobFor, scanKey } from "../../src/bot/scan-job.js";
import { loadEnv } from "../../src/config/env.js";
import { SafeLoraError } from "../../src/errors.js";
import { forgeRegistry } from "../../src/forge/forge.js";
import { SqliteJobQueue } from "../../src/queue/sqlite-queue.js";
import { SCHEMA_VERSION } from "../../src/queue/sqlite-schema.js";
import { MemoryForge } from "../helpers/memory-forge.js";
import { until } from "../helpers/until.js";

/** What test/fixtures/data-dir-3588d4f holds (its README says how it was made). */
const FIXTURE = join(import.meta.dirname, "..", "fixtures", "data-dir-3588d4f");
const LORA = "acme/lora";
const sha = (n: number) => `${n}`.repeat(40);
const FILES = "3f2a0c1d9e8b7a6f5e4d3c2b1a09f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1+a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";
const CONFIG = "0123456789abcdef";
const COMMENT = "65a1b2c3d4e5f60718293a4b";

let dataDir: string;
let path: string;
const opened: Array<{ close(): Promise<void> }> = [];
beforeEach(() => {
  dataDir = join(mkdtempSync(join(tmpdir(), "safe-lora-upgrade-")), "data");
  mkdirSync(dataDir);
  for (const name of ["safe-lora.db", "safe-lora.db.created"]) copyFileSync(join(FIXTURE, name), join(dataDir, name));
  path = join(dataDir, "safe-lora.db");
});
afterEach(async () => {
  for (const queue of opened.splice(0)) await queue.close();
  rmSync(join(dataDir, ".."), { recursive: true, force: true });
});

/** The bot's context on the copied DATA_DIR, as `serve` opens it, with the repos on an in-memory Hub forge. */
async function upgraded(forge = new MemoryForge()): Promise<BotContext> {
  const context = await createBotContext(loadEnv({ DATA_DIR: dataDir, LOG_LEVEL: "silent" }), {
    forges: forgeRegistry([forge]),
    hub: { hubUrl: "http://127.0.0.1:9" },
    tokenEnv: {},
    cache: null,
  });
  opened.push(context.queue);
  return context;
}

function refusal(open: () => unknown): SafeLoraError {
  try {
    open();
  } catch (error) {
    if (error instanceof SafeLoraError) return error;
    throw error;
  }
  throw new Error("expected the file to be refused");
}

describe("a DATA_DIR written by the first release (3588d4f)", () => {
  it("is read with every job in its state, renamed to today's keys, on the Hub forge", async () => {
    const { queue } = await upgraded();
    const jobs = (await queue.recent(100)).reverse();
    expect(jobs.map((job) => [job.id, job.kind, job.forge, job.repo, job.state, job.attempts])).toEqual([
      ["1", "patch", "hub", LORA, "done", 1],
      ["2", "scan", "hub", LORA, "done", 1],
      ["3", "patch", "hub", LORA, "done", 1],
      ["4", "patch", "hub", "acme/other", "failed", 5],
      ["5", "patch", "hub", "acme/third", "running", 1],
      ["6", "scan", "hub", LORA, "queued", 0],
      ["7", "command", "hub", LORA, "queued", 0],
      ["8", "patch", "hub", LORA, "queued", 0],
      ["9", "scan", "hub", "acme/secret", "queued", 0],
    ]);
    expect(jobs.map((job) => job.key)).toEqual([
      patchKey({ forge: "hub", repo: LORA, folder: ".", filesKey: FILES, configKey: CONFIG }),
      scanKey({ forge: "hub", repo: LORA, sha: sha(3), reason: "start" }),
      patchKey({ forge: "hub", repo: LORA, folder: "v1:final", filesKey: FILES, configKey: CONFIG }),
      patchKey({ forge: "hub", repo: "acme/other", folder: ".", filesKey: FILES, configKey: CONFIG }),
      patchKey({ forge: "hub", repo: "acme/third", folder: "nested/a", filesKey: FILES, configKey: CONFIG }),
      scanKey({ forge: "hub", repo: LORA, sha: sha(6), reason: "push" }),
      commandKey({ forge: "hub", repo: LORA, commentId: COMMENT }),
      commandPatchKey({ forge: "hub", repo: LORA, folder: "v1:final", commentId: COMMENT }),
      scanKey({ forge: "hub", repo: "acme/secret", sha: sha(7), reason: "reconcile" }),
    ]);
    expect(jobs.every((job) => !job.key.includes(":"))).toBe(true);
    expect(jobs[0]).toMatchObject({ result: { outcome: "committed", pr: 1, commit: sha(2), projected: 4, modules: 8, created: true }, error: null });
    expect(jobs[2]).toMatchObject({ result: { outcome: "refused", code: "no-pair", notice: 2 } });
    expect(jobs[3]).toMatchObject({ error: "gave up after 5 attempts; last error: the Hub answered 503 (attempt 5)" });
    expect(jobs[7]!.payload).toEqual({ repo: LORA, folder: "v1:final", sha: null, selection: { mode: "top-k", value: 2 }, command: { discussion: 3, commentId: COMMENT, ackId: "65a1b2c3d4e5f60718293a4c" } });
    expect(jobs[8]!.private).toBe(true);
    expect(await queue.counts()).toEqual({ queued: 4, running: 1, done: 3, failed: 1 });
    expect(await queue.doneOutcomes()).toEqual({ committed: 1, refused: 1, "": 1 });
  });

  it("keeps the stopped adapter, the covered owners and the acknowledgement, on the Hub forge only", async () => {
    const { memory } = await upgraded();
    expect(await memory.isStopped({ forge: "hub", repo: LORA, folder: "old-adapter" })).toBe(true);
    expect(await memory.isStopped({ forge: "github", repo: LORA, folder: "old-adapter" })).toBe(false);
    expect(await memory.isStopped({ forge: "hub", repo: LORA, folder: "." })).toBe(false);
    for (const owner of ["acme", "solo", "SOLO"]) expect(await memory.hasCoveredOwner({ forge: "hub", owner })).toBe(true);
    expect(await memory.hasCoveredOwner({ forge: "github", owner: "acme" })).toBe(false);
    expect(await memory.legacyAck({ forge: "hub", repo: LORA, commentId: COMMENT })).toBe("65a1b2c3d4e5f60718293a4c");
  });

  it("finds the job of an event delivered again after the upgrade instead of making a second", async () => {
    const { queue } = await upgraded();
    const again = await queue.enqueue(scanJobFor({ forge: "hub", repo: LORA, sha: sha(6), private: false, reason: "push" }));
    expect(again).toMatchObject({ created: false, job: { id: "6" } });
    // Whoever asked for that head: reconcile, backfill and the status page's form make the push's scan too.
    expect((await queue.enqueue(scanJobFor({ forge: "hub", repo: LORA, sha: sha(6), private: false, reason: "backfill" }))).created).toBe(false);
    const start = await queue.enqueue(scanJobFor({ forge: "hub", repo: LORA, sha: sha(3), private: false, reason: "start" }));
    expect(start).toMatchObject({ created: false, job: { id: "2", state: "done" } });
    const command = await queue.enqueue({ key: commandKey({ forge: "hub", repo: LORA, commentId: COMMENT }), kind: "command", forge: "hub", repo: LORA, private: false, payload: {} });
    expect(command).toMatchObject({ created: false, job: { id: "7" } });
    // The same repo on another forge is another repo.
    expect((await queue.enqueue(scanJobFor({ forge: "github", repo: LORA, sha: sha(6), private: false, reason: "push" }))).created).toBe(true);
    expect((await queue.recent(100)).length).toBe(10);
  });

  it("runs the jobs left queued and the one whose worker died, to an outcome each", async () => {
    const forge = new MemoryForge();
    forge.addOrg("acme", ["alice"]);
    forge.createRepo({ repo: LORA, files: { "README.md": "# An adapter repo\n" } });
    // The commit the old push named is on the forge: its scan runs as it would have before the upgrade.
    const repo = forge.repoOf(LORA);
    repo.commits.set(sha(6), { ...repo.commits.get(repo.refs.get("main")!)!, sha: sha(6) });
    const context = await upgraded(forge);
    const runner = context.queue.createRunner({ leaseMs: 60_000, pollMs: 10, retryBaseMs: 3_600_000 });
    runner.start(jobHandler(context));
    opened.unshift({ close: () => runner.stop() });
    const settled = await until(() => context.queue.counts(), (counts) => counts.queued === 0 && counts.running === 0);
    expect(settled).toEqual({ queued: 0, running: 0, done: 8, failed: 1 });
    const byId = new Map((await context.queue.recent(100)).map((job) => [job.id, job]));
    expect(byId.get("6")).toMatchObject({ state: "done", attempts: 1, result: { sha: sha(6), adapters: [], queued: [] } });
    // What the forge does not hold (the discussion, the other repos) is refused with the forge's words.
    for (const id of ["5", "7", "8", "9"]) expect(byId.get(id)).toMatchObject({ state: "done", result: { outcome: "refused", code: "hub-not-found", reason: expect.stringMatching(/not found|no discussion|no revision/) } });
    expect(byId.get("5")!.attempts).toBe(2);
  });

  it("is upgraded once: opening it again changes nothing", async () => {
    const first = await upgraded();
    const before = await first.queue.recent(100);
    await first.queue.close();
    opened.splice(0);
    const again = await upgraded();
    expect(await again.queue.recent(100)).toEqual(before);
    expect((again.queue as SqliteJobQueue).db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
  });

  it("is upgraded in one transaction: a failure half-way leaves the old file whole, and a later start upgrades it", async () => {
    let renamed = 0;
    const failing = (job: Parameters<typeof legacyJobKey>[0]) => {
      if (++renamed === 5) throw new Error("the disk went away");
      return legacyJobKey(job);
    };
    expect(() => new SqliteJobQueue(path, { legacyJobKey: failing })).toThrow(/the disk went away/);
    const { queue } = await upgraded();
    expect((await queue.recent(100)).map((job) => job.key)).toContain(scanKey({ forge: "hub", repo: LORA, sha: sha(6), reason: "push" }));
    expect(await queue.counts()).toEqual({ queued: 4, running: 1, done: 3, failed: 1 });
  });

  it("is refused, saying what to do, when opened without the bot's key translation (not by the bot itself)", () => {
    const error = refusal(() => new SqliteJobQueue(path));
    expect(error.code).toBe("damaged-state");
    expect(error.message).toBe(`${path} was written by an older safe-lora (schema version 0) and must be upgraded: start the bot (safe-lora serve or worker) on this DATA_DIR once, which upgrades it in place`);
    // Refusing changed nothing: the bot itself still upgrades it.
    expect(() => new SqliteJobQueue(path, { legacyJobKey }).db.close()).not.toThrow();
  });
});

describe("a DATA_DIR written by a newer version", () => {
  it("is refused with a message that names the versions and what to do", async () => {
    const queue = new SqliteJobQueue(path, { legacyJobKey });
    queue.db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    await queue.close();
    const error = refusal(() => new SqliteJobQueue(path, { legacyJobKey }));
    expect(error.code).toBe("damaged-state");
    expect(error.message).toBe(
      `${path} was written by a newer safe-lora (schema version ${SCHEMA_VERSION + 1}; this one reads up to ${SCHEMA_VERSION}): run that version, or a newer one, on this DATA_DIR`,
    );
  });
});

describe("a DATA_DIR written at 572c605 (schema version 1)", () => {
  const V1 = join(import.meta.dirname, "..", "fixtures", "data-dir-572c605");
  beforeEach(() => {
    for (const name of ["safe-lora.db", "safe-lora.db.created"]) copyFileSync(join(V1, name), join(dataDir, name));
  });

  it("is upgraded in place: every job and memory kept, the new columns empty, a worker listed once it runs", async () => {
    const context = await upgraded();
    const { queue, memory } = context;
    expect((queue as SqliteJobQueue).db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    const jobs = (await queue.recent(10)).reverse();
    expect(jobs.map((job) => [job.id, job.repo, job.state, job.attempts, job.supersedes, job.needs])).toEqual([
      ["1", "acme/queued", "queued", 0, null, null],
      ["2", "acme/done", "done", 1, null, null],
      ["3", "acme/running", "running", 1, null, null],
    ]);
    expect(await memory.isStopped({ forge: "hub", repo: "acme/stopped", folder: "." })).toBe(true);
    expect(await memory.hasCoveredOwner({ forge: "hub", owner: "acme" })).toBe(true);
    expect(await queue.workers()).toEqual([]);
    // The queued job and the dead worker's job both run (the repos are gone from this forge: the scans find nothing).
    const runner = queue.createRunner({ leaseMs: 60_000, pollMs: 10, retryBaseMs: 10 });
    runner.start(async () => ({ verdict: "done", result: null }));
    try {
      await until(() => queue.counts(), (counts) => counts.done === 3);
      expect((await queue.workers()).map((worker) => worker.id)).toEqual([runner.id]);
    } finally {
      await runner.stop();
    }
    expect(await queue.get("3")).toMatchObject({ state: "done", attempts: 2 });
  });
});
