import { afterEach, describe, expect, it } from "vitest";
import { jobKey } from "../../src/queue/job-key.js";
import type { JobHandler, JobQueue, JobRunner, JobVerdict, NewJob, RunnerOptions, RunningJob } from "../../src/queue/job-queue.js";
import { until } from "../helpers/until.js";

/**
 * What every queue backend must do, through the public contract only (JobQueue, JobRunner): the SQLite queue
 * runs it (sqlite-queue.test.ts), and a BullMQ backend must pass the same suite. `makeQueue` gives a fresh,
 * empty queue; the suite closes it.
 */
export function describeJobQueueContract(
  name: string,
  makeQueue: () => Promise<JobQueue>,
  /** Opens the store of the queue `makeQueue` made last once more, as a restarted process would (where the backend has one). */
  reopen?: () => Promise<JobQueue>,
): void {
  describe(`JobQueue contract: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    async function queue(): Promise<JobQueue> {
      const made = await makeQueue();
      cleanups.push(() => made.close());
      return made;
    }

    function runner(on: JobQueue, handler: JobHandler, options: Partial<RunnerOptions> = {}): JobRunner {
      const made = on.createRunner({ leaseMs: 60_000, pollMs: 10, retryBaseMs: 10, ...options });
      made.start(handler);
      cleanups.push(() => made.stop({ abandon: true }));
      return made;
    }

    it("stores a job once per key, with a string id, and gives it back by id", async () => {
      const q = await queue();
      const first = await q.enqueue(newJob({ key: "k1" }));
      const again = await q.enqueue(newJob({ key: "k1", payload: { other: true } }));
      expect(first.created).toBe(true);
      expect(again).toMatchObject({ created: false, job: { id: first.job.id, payload: { n: 0 } } });
      expect(typeof first.job.id).toBe("string");
      expect(first.job).toMatchObject({ key: "k1", kind: "test", forge: "hub", repo: "acme/x", private: false, state: "queued", attempts: 0, result: null, error: null });
      expect(await q.get(first.job.id)).toMatchObject({ id: first.job.id, key: "k1" });
      expect(await q.get("no-such-job")).toBeNull();
      expect(await q.counts()).toEqual({ queued: 1, running: 0, done: 0, failed: 0 });
      expect(q.health()).toEqual({ ok: true });
    });

    it("takes keys with any characters (':', '/', '|', spaces, non-ASCII) and keeps them apart", async () => {
      const q = await queue();
      const keys = ["scan:acme/x@abc", "scan:acme/x@abc:start", "a/b", "a|b", "a b", "ü:é", jobKey("scan", "hub", "acme/x", "abc"), jobKey("scan", "github", "acme/x", "abc")];
      for (const key of keys) expect((await q.enqueue(newJob({ key }))).created).toBe(true);
      for (const key of keys) expect((await q.enqueue(newJob({ key }))).created).toBe(false);
      expect((await q.recent(100)).map((job) => job.key).sort()).toEqual([...keys].sort());
    });

    it("runs a job and keeps its result; recent lists the newest first; counts and doneOutcomes add up", async () => {
      const q = await queue();
      const a = (await q.enqueue(newJob({ key: "a", repo: "acme/a" }))).job;
      const b = (await q.enqueue(newJob({ key: "b", repo: "acme/b" }))).job;
      const c = (await q.enqueue(newJob({ key: "c", repo: "acme/c" }))).job;
      const outcomes: Record<string, JobVerdict> = {
        [a.id]: { verdict: "done", result: { outcome: "committed", pr: 1 } },
        [b.id]: { verdict: "done", result: { outcome: "refused", reason: "no pair" } },
        [c.id]: { verdict: "done", result: null },
      };
      const seen: RunningJob[] = [];
      runner(q, async (job) => {
        seen.push(job);
        return outcomes[job.id]!;
      });
      await until(() => q.counts(), (counts) => counts.done === 3);
      expect(await q.get(a.id)).toMatchObject({ state: "done", attempts: 1, result: { outcome: "committed", pr: 1 }, error: null });
      expect((await q.get(a.id))!.finishedAt).not.toBeNull();
      expect(seen.map((job) => job.id).sort()).toEqual([a.id, b.id, c.id].sort());
      expect(seen[0]).toMatchObject({ state: "running", attempts: 1, forge: "hub", payload: { n: 0 } });
      expect((await q.recent(2)).map((job) => job.key)).toEqual(["c", "b"]);
      expect(await q.counts()).toEqual({ queued: 0, running: 0, done: 3, failed: 0 });
      expect(await q.doneOutcomes()).toEqual({ committed: 1, refused: 1, "": 1 });
    });

    it("runs at most one job per repo at a time: a second runner takes another repo's job meanwhile", async () => {
      const q = await queue();
      const first = (await q.enqueue(newJob({ key: "x1", repo: "acme/x" }))).job;
      const second = (await q.enqueue(newJob({ key: "x2", repo: "acme/x" }))).job;
      const other = (await q.enqueue(newJob({ key: "y1", repo: "acme/y" }))).job;
      const started: string[] = [];
      const otherStarted = deferred();
      const handler: JobHandler = async (job) => {
        started.push(job.id);
        if (job.id === other.id) otherStarted.resolve();
        // The first job runs until the second runner has taken a job: it must have passed over acme/x's second.
        if (job.id === first.id) await otherStarted.promise;
        return { verdict: "done", result: null };
      };
      runner(q, handler);
      await until(() => q.get(first.id), (job) => job?.state === "running");
      runner(q, handler);
      await until(() => q.counts(), (counts) => counts.done === 3);
      expect(started.indexOf(other.id)).toBeLessThan(started.indexOf(second.id));
      expect(started[0]).toBe(first.id);
    });

    it("treats the same repo name on two forges as two repos", async () => {
      const q = await queue();
      const onHub = (await q.enqueue(newJob({ key: "hub", forge: "hub", repo: "acme/x" }))).job;
      const onGithub = (await q.enqueue(newJob({ key: "github", forge: "github", repo: "acme/x" }))).job;
      const bothRunning = deferred();
      const running = new Set<string>();
      const handler: JobHandler = async (job) => {
        running.add(job.id);
        if (running.size === 2) bothRunning.resolve();
        await bothRunning.promise;
        return { verdict: "done", result: null };
      };
      runner(q, handler);
      runner(q, handler);
      await until(() => q.counts(), (counts) => counts.done === 2);
      expect([...running].sort()).toEqual([onHub.id, onGithub.id].sort());
    });

    it("takes a job again after its runner died and its lease ran out", async () => {
      const q = await queue();
      const { job } = await q.enqueue(newJob({ key: "k" }));
      const firstRun = deferred<AbortSignal>();
      const dead = runner(q, async (_job, signal) => {
        firstRun.resolve(signal);
        await new Promise((resolve) => signal.addEventListener("abort", resolve));
        return { verdict: "done", result: { by: "the dead runner" } };
      }, { leaseMs: 300 });
      const signal = await firstRun.promise;
      await dead.stop({ abandon: true });
      expect(signal.aborted).toBe(true);
      expect(await q.get(job.id)).toMatchObject({ state: "running", attempts: 1 });
      runner(q, async () => ({ verdict: "done", result: { by: "the second runner" } }), { leaseMs: 300 });
      const done = await until(() => q.get(job.id), (j) => j?.state === "done");
      expect(done).toMatchObject({ attempts: 2, result: { by: "the second runner" } });
    });

    it("retries with a doubling backoff, then fails the job after its last attempt", async () => {
      const q = await queue();
      const { job } = await q.enqueue(newJob({ key: "k" }));
      const attempts: Array<Pick<RunningJob, "attempts" | "retryInMs" | "error" | "runAfter"> & { returnedAt: number }> = [];
      runner(q, async (running) => {
        attempts.push({ attempts: running.attempts, retryInMs: running.retryInMs, error: running.error, runAfter: running.runAfter, returnedAt: Date.now() });
        return { verdict: "retry", error: `flaky ${running.attempts}` };
      }, { retryBaseMs: 40, maxAttempts: 3 });
      const failed = await until(() => q.get(job.id), (j) => j?.state === "failed");
      expect(attempts.map(({ attempts, retryInMs, error }) => ({ attempts, retryInMs, error }))).toEqual([
        { attempts: 1, retryInMs: 40, error: null },
        { attempts: 2, retryInMs: 80, error: "flaky 1" },
        { attempts: 3, retryInMs: null, error: "flaky 2" },
      ]);
      // Each retry was due no sooner than its backoff after the attempt before it ended.
      expect(attempts[1]!.runAfter).toBeGreaterThanOrEqual(attempts[0]!.returnedAt + 40);
      expect(attempts[2]!.runAfter).toBeGreaterThanOrEqual(attempts[1]!.returnedAt + 80);
      expect(failed).toMatchObject({ attempts: 3, error: "gave up after 3 attempts; last error: flaky 3" });
    });

    it("retries a job whose handler throws", async () => {
      const q = await queue();
      const { job } = await q.enqueue(newJob({ key: "k" }));
      runner(q, async (running) => {
        if (running.attempts === 1) throw new Error("a bug");
        return { verdict: "done", result: { attempts: running.attempts } };
      });
      expect(await until(() => q.get(job.id), (j) => j?.state === "done")).toMatchObject({ attempts: 2, result: { attempts: 2 } });
    });

    it("fails a job at once on a fail verdict", async () => {
      const q = await queue();
      const { job } = await q.enqueue(newJob({ key: "k" }));
      runner(q, async () => ({ verdict: "fail", error: "the stored job is damaged" }), { maxAttempts: 5 });
      expect(await until(() => q.get(job.id), (j) => j?.state === "failed")).toMatchObject({ attempts: 1, error: "the stored job is damaged" });
      expect(await q.counts()).toMatchObject({ failed: 1, done: 0 });
      expect(await q.doneOutcomes()).toEqual({});
    });

    it("does not start a job before its runAfter", async () => {
      const q = await queue();
      const later = (await q.enqueue(newJob({ key: "later", repo: "acme/later", runAfter: Date.now() + 3_600_000 }))).job;
      const now = (await q.enqueue(newJob({ key: "now", repo: "acme/now" }))).job;
      runner(q, async () => ({ verdict: "done", result: null }));
      await until(() => q.get(now.id), (j) => j?.state === "done");
      expect(await q.get(later.id)).toMatchObject({ state: "queued", attempts: 0 });
    });

    it("a graceful stop lets the running job finish, and takes no new one", async () => {
      const q = await queue();
      const first = (await q.enqueue(newJob({ key: "a", repo: "acme/a" }))).job;
      const started = deferred();
      const release = deferred();
      const r = runner(q, async () => {
        started.resolve();
        await release.promise;
        return { verdict: "done", result: null };
      });
      await started.promise;
      const second = (await q.enqueue(newJob({ key: "b", repo: "acme/b" }))).job;
      const stopped = r.stop();
      release.resolve();
      await stopped;
      expect(await q.get(first.id)).toMatchObject({ state: "done" });
      expect(await q.get(second.id)).toMatchObject({ state: "queued" });
    });

    it("starts a job of a supersedes group with the newer job that was stored before it started", async () => {
      const q = await queue();
      const older = (await q.enqueue(newJob({ key: "repatch-1", supersedes: "pr-7" }))).job;
      const newer = (await q.enqueue(newJob({ key: "repatch-2", supersedes: "pr-7" }))).job;
      const other = (await q.enqueue(newJob({ key: "repatch-3", supersedes: "pr-8" }))).job;
      const plain = (await q.enqueue(newJob({ key: "plain" }))).job;
      expect(older).toMatchObject({ supersedes: "pr-7", needs: null });
      const seen = new Map<string, string | null>();
      runner(q, async (job) => {
        seen.set(job.id, job.supersededBy);
        return { verdict: "done", result: { outcome: job.supersededBy ? "superseded" : "committed" } };
      });
      await until(() => q.counts(), (counts) => counts.done === 4);
      expect(Object.fromEntries(seen)).toEqual({ [older.id]: newer.id, [newer.id]: null, [other.id]: null, [plain.id]: null });
      // Re-enqueueing the older key changes nothing: the group's newest is still the newer job.
      expect((await q.enqueue(newJob({ key: "repatch-1", supersedes: "pr-7" }))).created).toBe(false);
      expect(await q.doneOutcomes()).toEqual({ superseded: 1, committed: 3 });
    });

    it("keeps a job that needs a GPU for a GPU runner: a CPU runner passes over it", async () => {
      const q = await queue();
      const gpuJob = (await q.enqueue(newJob({ key: "full-finetune", repo: "acme/big", needs: "gpu" }))).job;
      const cpuJob = (await q.enqueue(newJob({ key: "lora", repo: "acme/small" }))).job;
      const ranOn: Record<string, string> = {};
      const handler = (runnerName: string): JobHandler => async (job) => {
        ranOn[job.id] = runnerName;
        return { verdict: "done", result: null };
      };
      runner(q, handler("cpu"));
      await until(() => q.get(cpuJob.id), (job) => job?.state === "done");
      // A later job for the CPU is taken too, while the GPU job still waits untouched.
      const later = (await q.enqueue(newJob({ key: "lora-2", repo: "acme/small-2" }))).job;
      await until(() => q.get(later.id), (job) => job?.state === "done");
      expect(await q.get(gpuJob.id)).toMatchObject({ state: "queued", attempts: 0, needs: "gpu" });
      runner(q, handler("gpu"), { capabilities: { executionProvider: "cuda", gpu: true, memoryBytes: 80e9 } });
      await until(() => q.get(gpuJob.id), (job) => job?.state === "done");
      expect(ranOn).toEqual({ [cpuJob.id]: "cpu", [later.id]: "cpu", [gpuJob.id]: "gpu" });
    });

    it("lists the runners with what they advertise, and forgets one that stopped gracefully", async () => {
      const q = await queue();
      const cpu = runner(q, async () => ({ verdict: "done", result: null }), { capabilities: { executionProvider: "cpu", gpu: false, memoryBytes: 16e9 } });
      const gpu = runner(q, async () => ({ verdict: "done", result: null }), { capabilities: { executionProvider: "webgpu", gpu: true, memoryBytes: 141e9, notes: ["cuda: not installed"] } });
      const listed = await until(() => q.workers(), (workers) => workers.length === 2);
      expect(listed.map(({ id, executionProvider, gpu, memoryBytes, notes }) => ({ id, executionProvider, gpu, memoryBytes, notes })).sort((a, b) => a.executionProvider.localeCompare(b.executionProvider))).toEqual([
        { id: cpu.id, executionProvider: "cpu", gpu: false, memoryBytes: 16e9, notes: undefined },
        { id: gpu.id, executionProvider: "webgpu", gpu: true, memoryBytes: 141e9, notes: ["cuda: not installed"] },
      ]);
      expect(cpu.id).not.toBe(gpu.id);
      await cpu.stop();
      expect((await q.workers()).map((worker) => worker.id)).toEqual([gpu.id]);
    });

    it("does not give a job that runs longer than its lease to a second runner while the first keeps renewing it", async () => {
      const q = await queue();
      const { job } = await q.enqueue(newJob({ key: "long" }));
      let starts = 0;
      const handler: JobHandler = async (_job, signal) => {
        starts++;
        // Six leases long, with the event loop free (as the projection thread leaves it).
        await new Promise((resolve) => setTimeout(resolve, 1_800));
        return signal.aborted ? { verdict: "retry", error: "aborted" } : { verdict: "done", result: { starts } };
      };
      runner(q, handler, { leaseMs: 300 });
      runner(q, handler, { leaseMs: 300 });
      expect(await until(() => q.get(job.id), (j) => j?.state === "done", 20_000)).toMatchObject({ attempts: 1, result: { starts: 1 } });
      expect(starts).toBe(1);
    });

    if (reopen) {
      it("loses nothing on a restart: queued, running and finished jobs are all there after reopening, and the running one is finished", async () => {
        const q = await queue();
        const done = (await q.enqueue(newJob({ key: "done", repo: "acme/a" }))).job;
        // Every runner on one lease, as every worker of a deployment has (BullMQ throttles its stalled-job check
        // across workers by the interval of whichever checked last).
        const first = runner(q, async () => ({ verdict: "done", result: { outcome: "committed" } }), { leaseMs: 300 });
        await until(() => q.get(done.id), (j) => j?.state === "done");
        await first.stop();
        const interrupted = (await q.enqueue(newJob({ key: "interrupted", repo: "acme/b" }))).job;
        const started = deferred();
        const crashing = runner(q, async (_job, signal) => {
          started.resolve();
          await new Promise((resolve) => signal.addEventListener("abort", resolve));
          return { verdict: "done", result: null };
        }, { leaseMs: 300 });
        await started.promise;
        await crashing.stop({ abandon: true });
        const waiting = (await q.enqueue(newJob({ key: "waiting", repo: "acme/c", payload: { n: 3 } }))).job;
        await q.close();

        const again = await reopen();
        cleanups.push(() => again.close());
        expect(await again.get(done.id)).toMatchObject({ state: "done", result: { outcome: "committed" } });
        expect(await again.get(interrupted.id)).toMatchObject({ state: "running", attempts: 1 });
        expect(await again.get(waiting.id)).toMatchObject({ state: "queued", payload: { n: 3 } });
        expect((await again.enqueue(newJob({ key: "waiting" }))).created).toBe(false);
        runner(again, async () => ({ verdict: "done", result: { outcome: "committed" } }), { leaseMs: 300 });
        await until(() => again.counts(), (counts) => counts.done === 3, 20_000);
        expect(await again.get(interrupted.id)).toMatchObject({ state: "done", attempts: 2 });
        expect(await again.doneOutcomes()).toEqual({ committed: 3 });
      });
    }

    it("takes no job after close", async () => {
      const q = await makeQueue();
      await q.enqueue(newJob({ key: "k" }));
      await q.close();
      await expect(q.enqueue(newJob({ key: "k2" }))).rejects.toThrow();
    });
  });
}

function newJob(overrides: Partial<NewJob> & { key: string }): NewJob {
  return { kind: "test", forge: "hub", repo: "acme/x", private: false, payload: { n: 0 }, ...overrides };
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
