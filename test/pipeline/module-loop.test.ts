import { describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import { runModules, type ModuleSteps } from "../../src/pipeline/module-loop.js";

/** A promise with its resolve at hand, so a test decides when each step ends. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  return { promise, resolve, reject };
}

/** Steps that log what happens, each read and compute ending only when the test says so. */
function scripted(count: number) {
  const log: string[] = [];
  const reads = Array.from({ length: count }, () => deferred<string>());
  const computes = Array.from({ length: count }, () => deferred<string>());
  const steps: ModuleSteps<number, string, string> = {
    read(plan) {
      log.push(`read ${plan}`);
      return reads[plan]!.promise;
    },
    computeModule(plan, input) {
      log.push(`compute ${plan} (${input})`);
      return computes[plan]!.promise;
    },
    discard(input) {
      log.push(`discard ${input}`);
    },
  };
  return { log, reads, computes, steps };
}

/** Lets every pending callback run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("runModules", () => {
  it("reads module i + 1 while module i is computed, queues it behind module i, and keeps the outcomes in order", async () => {
    const { log, reads, computes, steps } = scripted(3);
    const run = runModules([0, 1, 2], steps, { readAhead: 1 });
    await settle();
    expect(log).toEqual(["read 0"]);
    reads[0]!.resolve("bytes 0");
    await settle();
    // Module 1's read starts as module 0's compute does, before module 0 is done.
    expect(log).toEqual(["read 0", "read 1", "compute 0 (bytes 0)"]);
    reads[1]!.resolve("bytes 1");
    await settle();
    // Module 1 is handed over as soon as it is read, to wait behind module 0; module 2's read begins.
    expect(log.slice(3)).toEqual(["read 2", "compute 1 (bytes 1)"]);
    reads[2]!.resolve("bytes 2");
    await settle();
    // No third module is handed over while module 0 still computes.
    expect(log).toHaveLength(5);
    computes[0]!.resolve("done 0");
    await settle();
    expect(log.slice(5)).toEqual(["compute 2 (bytes 2)"]);
    computes[2]!.resolve("done 2");
    computes[1]!.resolve("done 1");
    await expect(run).resolves.toEqual(["done 0", "done 1", "done 2"]);
  });

  it("reads two modules ahead by default", async () => {
    const { log, reads, computes, steps } = scripted(4);
    const run = runModules([0, 1, 2, 3], steps);
    reads[0]!.resolve("bytes 0");
    await settle();
    expect(log).toEqual(["read 0", "read 1", "read 2", "compute 0 (bytes 0)"]);
    for (const [i, step] of [...reads.slice(1), ...computes].entries()) step.resolve(i < 3 ? `bytes ${i + 1}` : `done ${i - 3}`);
    await expect(run).resolves.toEqual(["done 0", "done 1", "done 2", "done 3"]);
  });

  it("stops between modules when the signal aborts, dropping what was read ahead or queued", async () => {
    const { log, reads, computes, steps } = scripted(4);
    const controller = new AbortController();
    const progress: number[] = [];
    const run = runModules([0, 1, 2, 3], steps, { readAhead: 1, signal: controller.signal, onModule: (_plan, _outcome, done) => progress.push(done) });
    reads[0]!.resolve("bytes 0");
    reads[1]!.resolve("bytes 1");
    reads[2]!.resolve("bytes 2");
    await settle();
    controller.abort("the job's time limit");
    computes[0]!.resolve("done 0");
    const error = await run.catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(SafeLoraError);
    expect((error as SafeLoraError).code).toBe("limit-exceeded");
    expect((error as SafeLoraError).message).toBe("stopped after 1 of 4 modules: the job's time limit");
    await settle();
    expect(progress).toEqual([1]);
    // Module 1 was queued and is dropped; module 2 was read and is given back; module 3 was never read.
    expect(log).toEqual(["read 0", "read 1", "compute 0 (bytes 0)", "read 2", "compute 1 (bytes 1)", "discard bytes 2"]);
  });

  it("throws the signal's reason when it is an error, and reads nothing once aborted", async () => {
    const { log, steps } = scripted(2);
    const reason = new SafeLoraError("shutting down", "limit-exceeded");
    const error = await runModules([0, 1], steps, { signal: AbortSignal.abort(reason) }).catch((thrown: unknown) => thrown);
    expect(error).toBe(reason);
    expect(log).toEqual([]);
  });

  it("fails with a compute's error, giving back what was read ahead; a later failure is not left unhandled", async () => {
    const { log, reads, computes, steps } = scripted(3);
    const run = runModules([0, 1, 2], steps, { readAhead: 1 });
    reads[0]!.resolve("bytes 0");
    await settle();
    reads[1]!.resolve("bytes 1");
    await settle();
    const failure = new SafeLoraError("module 0: non-finite", "non-finite");
    computes[0]!.reject(failure);
    computes[1]!.reject(new Error("the thread stopped"));
    reads[2]!.resolve("bytes 2");
    await expect(run).rejects.toBe(failure);
    await settle();
    expect(log).toEqual(["read 0", "read 1", "compute 0 (bytes 0)", "read 2", "compute 1 (bytes 1)", "discard bytes 2"]);
  });

  it("fails with a read's error when the module comes to be computed", async () => {
    const { reads, computes, steps } = scripted(2);
    const run = runModules([0, 1], steps);
    reads[0]!.resolve("bytes 0");
    reads[1]!.reject(new SafeLoraError("range read failed", "hub-unavailable"));
    computes[0]!.resolve("done 0");
    await expect(run).rejects.toThrow("range read failed");
  });

  it("does nothing for no modules", async () => {
    const { log, steps } = scripted(0);
    await expect(runModules([], steps)).resolves.toEqual([]);
    expect(log).toEqual([]);
  });
});
