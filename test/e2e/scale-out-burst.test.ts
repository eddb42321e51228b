import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Job } from "../../src/queue/job-queue.js";
import { BotWorld } from "../helpers/bot-world.js";
import { deleteRedisPrefix, testRedisPrefix, testRedisUrl } from "../helpers/redis.js";

// Issue 10, must-shows 1 and 2: a burst of pushes to many adapter repos, a web process and two workers, one
// worker SIGKILLed in the middle of a patch job; every repo gets its pull request exactly once, the killed job is
// finished by another process, and the queue ends empty. The same assertions for both queue backends.

const ADAPTERS = 20;

interface Backend {
  /** The variables of each process: the web process (`web`), the workers (`worker-1`, `worker-2`), the test's reader. */
  env(world: BotWorld, processName: string): Record<string, string>;
  cleanUp(): Promise<void>;
}

function redisBackend(): Backend {
  const prefix = testRedisPrefix("burst");
  return {
    // Processes on different machines share only Redis and the Hub: each has a DATA_DIR (alignment cache) of its own.
    env: (world, processName) => ({ QUEUE_URL: testRedisUrl(), SAFE_LORA_QUEUE_PREFIX: prefix, DATA_DIR: join(world.work, `data-${processName}`) }),
    cleanUp: async () => void (await deleteRedisPrefix(prefix)),
  };
}

function sqliteBackend(): Backend {
  return {
    // The embedded queue is a file in DATA_DIR, so every process that shares it shares that folder (and with it
    // the alignment cache): processes of one machine, as the embedded queue allows.
    env: (world) => ({ DATA_DIR: join(world.work, "data") }),
    cleanUp: async () => {},
  };
}

type Spawned = Awaited<ReturnType<BotWorld["spawnWorker"]>>;

interface LogLine {
  readonly msg: string;
  readonly job?: string;
  readonly kind?: string;
  readonly repo?: string;
  readonly attempt?: number;
}

function logLines(output: string): LogLine[] {
  return output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as LogLine);
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
}

/** The first patch job `worker` logs as started, as soon as its line arrives; fails if the worker exits first. */
function firstPatchStart(worker: Spawned, name: string): Promise<LogLine> {
  return new Promise((resolve, reject) => {
    const look = () => {
      const line = logLines(worker.output()).find((l) => l.msg === "job started" && l.kind === "patch" && typeof l.repo === "string");
      if (!line) return;
      worker.process.stdout!.off("data", look);
      worker.process.off("exit", died);
      resolve(line);
    };
    const died = (code: number | null) => reject(new Error(`${name} exited (${code}) before it started a patch job; its output:\n${worker.output()}`));
    worker.process.stdout!.on("data", look);
    worker.process.once("exit", died);
    look();
  });
}

let world: BotWorld | undefined;
let backend: Backend | undefined;
afterEach(async () => {
  await world?.close();
  await backend?.cleanUp();
  world = backend = undefined;
});

describe.each([
  { makeBackend: redisBackend, label: "BullMQ on Redis (QUEUE_URL)" },
  { makeBackend: sqliteBackend, label: "the embedded SQLite queue" },
])(`a burst of ${ADAPTERS} pushes with $label`, ({ makeBackend }) => {
  it(`a web process and two workers: ${ADAPTERS} pull requests, each once; a worker killed mid-job has its job finished by another; the queue empties`, async () => {
    backend = makeBackend();
    world = await BotWorld.create();
    const w = world;
    const repos = await w.addAdapterRepos(ADAPTERS);

    // The web process takes webhooks and runs no job: the two workers do all the work.
    const web = await w.spawnBot(backend.env(w, "web"), ["--web-only"]);
    w.subscribe(web.port);
    const [victim, survivor] = await Promise.all([w.spawnWorker(backend.env(w, "worker-1")), w.spawnWorker(backend.env(w, "worker-2"))]);

    // The kill's trigger is the victim's own "job started" line for a patch job, which the job handler logs once the
    // worker has taken the job and before the job's first request to the Hub: so the job has started. That it has
    // not finished is made certain, not left to how fast a pipe is read: until the kill, the Hub holds every
    // pull-request commit (the last step of a patch job), and the victim's, if it got that far, is then refused —
    // a dead process's request, never applied.
    const kill: { line: LogLine | null; prsAtKill: number | null } = { line: null, prsAtKill: null };
    const killDone = firstPatchStart(victim, "worker-1").then(async (line) => {
      victim.process.kill("SIGKILL");
      await exited(victim.process);
      kill.line = line;
      kill.prsAtKill = w.pullRequests(line.repo!).length;
    });
    // Awaited below, after the burst; until then its failure must not count as unhandled.
    killDone.catch(() => {});
    w.hub.hooks.onRequest = async (method, path) => {
      // The hook is given the path only; the request's query (create_pr) is in the Hub's log, pushed just before.
      const logged = w.hub.requests.at(-1)!.path;
      if (method !== "POST" || !/\/commit\/[^?]*\?(.*&)?create_pr=1/.test(logged) || kill.line) return;
      await killDone;
      if (path.startsWith(`/api/models/${kill.line!.repo}/commit/`)) throw new Error("the worker that sent this was killed");
    };

    // One burst: every adapter pushed at once, each push sending its webhook.
    await Promise.all(repos.map((repo) => w.pushAdapter(".", "adapter", { repo })));

    await killDone;
    const killed = kill.line!;
    expect(killed.repo).toMatch(/^acme\//);
    expect(kill.prsAtKill).toBe(0);

    const queue = await w.queueIdle({ ...w.env(), ...backend.env(w, "reader") }, 90_000);
    try {
      const counts = await queue.counts();
      expect({ queued: counts.queued, running: counts.running, failed: counts.failed }).toEqual({ queued: 0, running: 0, failed: 0 });

      const patches = (await queue.recent(1000)).filter((job) => job.kind === "patch");
      expect(patches.map((job) => job.repo).sort()).toEqual([...repos].sort());
      for (const job of patches) expect({ repo: job.repo, state: job.state, outcome: (job.result as { outcome?: string } | null)?.outcome }).toEqual({ repo: job.repo, state: "done", outcome: "committed" });

      // The killed job: taken again after its worker died, and finished once, by the other worker.
      const retried = (await queue.get(killed.job!)) as Job;
      expect(retried).toMatchObject({ kind: "patch", repo: killed.repo, state: "done" });
      expect(retried.attempts).toBeGreaterThanOrEqual(2);
      expect(logLines(survivor.output()).filter((l) => l.msg === "job done" && l.job === killed.job)).toHaveLength(1);
      expect(logLines(web.output()).filter((l) => l.msg === "job started")).toEqual([]);
    } finally {
      await queue.close();
    }

    // Each repo on the Hub: one pull request, by the bot, holding one commit, the bot's; and no notice.
    for (const repo of repos) {
      const prs = w.pullRequests(repo);
      expect({ repo, prs: prs.map((pr) => pr.authorId) }).toEqual({ repo, prs: [w.botUser.id] });
      const commits = w.prCommits(prs[0]!.num, repo);
      expect({ repo, authors: commits.map((id) => w.repo(repo).commits.get(id)!.authorId) }).toEqual({ repo, authors: [w.botUser.id] });
      expect(w.repo(repo).discussions.filter((d) => !d.isPullRequest)).toHaveLength(0);
    }
    expect(web.process.exitCode).toBeNull();
    expect(survivor.process.exitCode).toBeNull();
  }, 120_000);
});
