import { SafeLoraError } from "../errors.js";

/** The per-module half of a patch method: reading one module's inputs, and computing it. */
export interface ModuleSteps<Plan, Input, Outcome> {
  /** Reads what one module needs (I/O): runs for module i + 1 while module i is computed. */
  read(plan: Plan): Promise<Input>;
  /**
   * Computes one module (off the main thread) and stages what it produces. The next module's call may begin before
   * this one's has ended (it queues behind it in the computing thread), so the two must not share unguarded state.
   */
  computeModule(plan: Plan, input: Input): Promise<Outcome>;
  /** Gives back what a read holds when its module will not be computed (the run stopped or failed). */
  discard(input: Input): void;
}

export interface LoopOptions<Plan, Outcome> {
  /** Stops the run between modules. */
  readonly signal?: AbortSignal | undefined;
  readonly onModule?: (plan: Plan, outcome: Outcome, done: number) => void;
  /** How many modules are read ahead of the one computed (default 2): memory holds that many modules' inputs more. */
  readonly readAhead?: number;
}

function stopped(signal: AbortSignal, done: number, total: number): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new SafeLoraError(`stopped after ${done} of ${total} modules: ${String(reason ?? "aborted")}`, "limit-exceeded");
}

/**
 * Every module in order, with reads ahead: while module i is computed, the inputs of modules i + 1 … i + readAhead
 * are being read, so a run takes about the longer of its reads and its compute rather than their sum, and a slow
 * read (a large module over HTTP) has the time of several computes to arrive. Module i + 1 is handed to the
 * compute as soon as it is read, before module i's outcome is taken in, so the computing thread never waits for
 * the main thread between modules; outcomes are taken in order. An aborted signal stops the run before the next
 * module is handed over; what was read ahead, or is still computing, is dropped.
 */
export async function runModules<Plan, Input, Outcome>(plans: readonly Plan[], steps: ModuleSteps<Plan, Input, Outcome>, options: LoopOptions<Plan, Outcome> = {}): Promise<Outcome[]> {
  const depth = Math.max(1, options.readAhead ?? 2);
  const outcomes: Outcome[] = [];
  const reads: Array<Promise<Input>> = [];
  const computing: Array<Promise<Outcome>> = [];
  let started = 0;
  const fill = (upTo: number) => {
    for (; started < Math.min(upTo, plans.length) && !options.signal?.aborted; started++) {
      const read = steps.read(plans[started]!);
      // Handled now so that a failure while an earlier module computes is not an unhandled rejection; awaited below.
      read.catch(() => undefined);
      reads.push(read);
    }
  };
  const dropAll = () => {
    for (const read of reads.splice(0)) void read.then((input) => steps.discard(input), () => undefined);
    computing.splice(0);
  };
  const takeOutcome = async () => {
    const outcome = await computing.shift()!;
    outcomes.push(outcome);
    options.onModule?.(plans[outcomes.length - 1]!, outcome, outcomes.length);
  };
  fill(1);
  try {
    for (let index = 0; index < plans.length; index++) {
      if (options.signal?.aborted) throw stopped(options.signal, outcomes.length, plans.length);
      const input = await reads.shift()!;
      fill(index + 1 + depth);
      const compute = steps.computeModule(plans[index]!, input);
      compute.catch(() => undefined);
      computing.push(compute);
      // One module computing and the next one queued behind it, at most.
      if (computing.length > 1) await takeOutcome();
    }
    while (computing.length > 0) await takeOutcome();
  } catch (error) {
    dropAll();
    throw error;
  }
  return outcomes;
}
