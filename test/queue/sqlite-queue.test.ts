import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import type { JobRunner } from "../../src/queue/job-queue.js";
import { markerPathOf, SqliteJobQueue } from "../../src/queue/sqlite-queue.js";
import { until } from "../helpers/until.js";
import { describeJobQueueContract } from "./queue-contract.js";

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "safe-lora-queue-"));
  path = join(dir, "safe-lora.db");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describeJobQueueContract(
  "SQLite, a file in DATA_DIR",
  async () => new SqliteJobQueue(path),
  async () => new SqliteJobQueue(path),
);
describeJobQueueContract("SQLite, in memory", async () => new SqliteJobQueue(":memory:"));

const job = (repo: string, key = repo) => ({ key, kind: "scan", forge: "hub" as const, repo, private: false, payload: { repo, sha: null, reason: "push" } });

function openError(): SafeLoraError {
  try {
    new SqliteJobQueue(path).db.close();
  } catch (error) {
    if (error instanceof SafeLoraError) return error;
    throw error;
  }
  throw new Error("expected the queue to refuse the file");
}

/** A queue with a few jobs, closed again (WAL checkpointed into the main file). */
async function filledQueue(jobs = 50): Promise<void> {
  const queue = new SqliteJobQueue(path);
  for (let i = 0; i < jobs; i++) await queue.enqueue({ ...job(`acme/repo-${i}`), payload: { repo: `acme/repo-${i}`, sha: null, reason: "push", pad: "x".repeat(200) } });
  await queue.close();
}

describe("SqliteJobQueue: damaged rows", () => {
  let runner: JobRunner | null = null;
  afterEach(async () => {
    await runner?.stop();
    runner = null;
  });

  it("fails a queued row whose payload is not JSON alone, and runs the next job", async () => {
    const queue = new SqliteJobQueue(path);
    await queue.enqueue(job("acme/broken"));
    const fine = (await queue.enqueue(job("acme/fine"))).job;
    queue.db.prepare("UPDATE jobs SET payload = '{not json' WHERE repo = 'acme/broken'").run();
    const ran: string[] = [];
    runner = queue.createRunner({ leaseMs: 60_000, pollMs: 10, retryBaseMs: 10 });
    runner.start(async (taken) => {
      ran.push(taken.repo);
      return { verdict: "done", result: null };
    });
    await until(() => queue.get(fine.id), (j) => j?.state === "done");
    expect(ran).toEqual(["acme/fine"]);
    const broken = (await queue.recent(10)).find((j) => j.repo === "acme/broken")!;
    expect(broken.state).toBe("failed");
    expect(broken.error).toMatch(/the stored job is damaged \(its payload is not JSON\)/);
    expect(queue.health()).toEqual({ ok: true });
    await runner.stop();
    await queue.close();
  });

  it("reports itself unhealthy while taking jobs fails, and healthy again once it works", async () => {
    const queue = new SqliteJobQueue(path);
    runner = queue.createRunner({ leaseMs: 60_000, pollMs: 10, retryBaseMs: 10 });
    runner.start(async () => ({ verdict: "done", result: null }));
    queue.db.exec("ALTER TABLE jobs RENAME TO jobs_gone");
    runner.poke();
    expect(await until(() => queue.health(), (health) => !health.ok)).toMatchObject({ ok: false, reason: expect.stringMatching(/^claiming jobs fails: .*no such table: jobs/) });
    queue.db.exec("ALTER TABLE jobs_gone RENAME TO jobs");
    runner.poke();
    expect(await until(() => queue.health(), (health) => health.ok)).toEqual({ ok: true });
    await runner.stop();
    await queue.close();
  });
});

describe("SqliteJobQueue: the database is checked at start", () => {
  it("refuses a database with a damaged page, naming the file", async () => {
    await filledQueue();
    expect(statSync(path).size).toBeGreaterThan(3 * 4096);
    const fd = openSync(path, "r+");
    writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, 2 * 4096); // the third page: part of the jobs table
    closeSync(fd);
    const error = openError();
    expect(error.code).toBe("damaged-state");
    expect(error.message).toContain(`${path} is damaged (SQLite`);
    expect(error.message).toMatch(/restore it from a backup/);
  });

  it("refuses a file that is not a SQLite database, naming the file", () => {
    rmSync(path, { force: true });
    writeFileSync(path, "this is not a database, but it is long enough to have a header of sorts".repeat(20));
    expect(openError()).toMatchObject({ code: "damaged-state", message: expect.stringContaining(`${path} is damaged (SQLite: file is not a database)`) });
  });

  it("refuses a database emptied where one existed instead of silently forgetting everything", async () => {
    await filledQueue(3);
    truncateSync(path, 0);
    for (const suffix of ["-wal", "-shm"]) rmSync(`${path}${suffix}`, { force: true });
    const error = openError();
    expect(error.code).toBe("damaged-state");
    expect(error.message).toContain(`${path} holds no tables, but this DATA_DIR had a queue there`);
    // Refusing changed nothing: still empty, the marker written beside the database still there.
    expect(statSync(path).size).toBe(0);
    expect(readFileSync(markerPathOf(path), "utf8")).toMatch(/was created here/);
  });

  it("starts on a new DATA_DIR, and again on the same one", async () => {
    const queue = new SqliteJobQueue(path);
    await queue.enqueue(job("acme/a"));
    await queue.close();
    expect(existsSync(markerPathOf(path))).toBe(true);
    const again = new SqliteJobQueue(path);
    expect((await again.recent(10)).map((j) => j.repo)).toEqual(["acme/a"]);
    await again.close();
  });
});
