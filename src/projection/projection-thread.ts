import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { ExecutionProvider, ExecutionProviderChoice } from "./execution-provider.js";
import { DEFAULT_OPERATOR, type Operator } from "./operator.js";
import { fromThreadError, NO_SUBSPACE_EXCHANGE, type FullDeltaReply, type FullModuleBytes, type LoraBytes, type SubspaceExchange, type PairBytes, type ProjectionReply, type ProjectionRequest, type RawTensor, type ThreadMessage, type WarmLease, type WarmStatus } from "./projection-messages.js";
import type { OpenedProvider } from "./provider-loading.js";

/**
 * The worker's script: the compiled `.js` beside this module (dist/, the installed CLI), or, when running from
 * source (tsx, vitest), the `.ts` through tsx's loader, which is registered in the worker before it is imported.
 */
function spawn(): Worker {
  const compiled = new URL("./projection-worker.js", import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return new Worker(compiled);
  const source = new URL("./projection-worker.ts", import.meta.url);
  // tsx's ESM API, resolved from here; its `import` entry sits beside the `require` one that createRequire finds.
  const api = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve("tsx/esm/api")), "index.mjs")).href;
  return new Worker(`import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(source.href)}); });`, { eval: true });
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/**
 * The process's projection thread (src/projection/projection-worker.ts), started on first use and kept for the
 * process's lifetime with its onnxruntime sessions, so a bot creates each session once, not once per job. It
 * keeps the process alive only while a request is in flight. Errors come back as the SafeLoraError (code, fix)
 * the thread threw; a thread that dies fails what was in flight and is started afresh by the next request.
 */
export class ProjectionThread {
  private static current: ProjectionThread | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Why the thread is gone, once it is: a message posted to an exited worker is dropped without a word. */
  private ended: Error | null = null;

  private constructor(private readonly worker: Worker) {
    worker.unref();
    worker.on("message", (message: ThreadMessage) => this.settle(message));
    worker.on("error", (error) => this.fail(error));
    worker.on("exit", (code) => this.fail(new Error(`the projection thread stopped (exit code ${code})`)));
  }

  static shared(): ProjectionThread {
    ProjectionThread.current ??= new ProjectionThread(spawn());
    return ProjectionThread.current;
  }

  /**
   * Stops the thread (tests, shutdown); the next request starts a new one. What is in flight fails at once; the
   * thread itself ends after the run it is in (terminating it mid-run can abort the process: projection-worker.ts).
   */
  static async stop(): Promise<void> {
    const thread = ProjectionThread.current;
    ProjectionThread.current = null;
    if (!thread) return;
    const exited = new Promise<void>((resolve) => thread.worker.once("exit", () => resolve()));
    thread.fail(new Error("the projection thread stopped"));
    thread.worker.postMessage({ stop: true });
    await exited;
  }

  private settle(message: ThreadMessage): void {
    const pending = this.pending.get(message.id);
    if (!pending) return;
    this.pending.delete(message.id);
    if (this.pending.size === 0) this.worker.unref();
    if ("error" in message) pending.reject(fromThreadError(message.error));
    else pending.resolve(message.ok);
  }

  private fail(error: Error): void {
    this.ended ??= error;
    if (ProjectionThread.current === this) ProjectionThread.current = null;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }

  private call<T>(request: ProjectionRequest, transfer: ArrayBuffer[] = []): Promise<T> {
    // A run holds on to its thread: asked after the thread died, it must fail, not wait for an answer forever.
    if (this.ended) return Promise.reject(this.ended);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.worker.ref();
      try {
        this.worker.postMessage({ id, request }, transfer);
      } catch (error) {
        // Not sent (e.g. a buffer that cannot be moved): nothing will answer it, so it must not keep the process alive.
        this.pending.delete(id);
        if (this.pending.size === 0) this.worker.unref();
        reject(error);
      }
    });
  }

  /**
   * Opens the session for `choice` (an unavailable provider fails here, before any read) and names the provider it
   * runs on; for `auto`, the first of cuda, webgpu, cpu that loads, and why the better ones did not.
   */
  open(choice: ExecutionProviderChoice): Promise<OpenedProvider> {
    return this.call({ op: "open", choice });
  }

  /**
   * One module from the pair's weights, and V into `alignmentInto` when given (for the cache); `keep`: the thread
   * keeps V warm under this id (reply.kept says whether it fitted). Every buffer is moved to the thread, not copied:
   * the caller must not use them afterwards. The weights' buffers come back in `buffers` for reuse, and
   * `alignmentInto` as the reply's `alignment.v`. `subspace`: a cached subspace for the subspace operator (moved
   * too), and whether to hand back one computed here.
   */
  project(
    provider: ExecutionProvider,
    lora: LoraBytes,
    pair: PairBytes,
    alignmentInto: Float32Array | null = null,
    keep: string | null = null,
    operator: Operator = DEFAULT_OPERATOR,
    subspace: SubspaceExchange = NO_SUBSPACE_EXCHANGE,
  ): Promise<ProjectionReply> {
    const moved = { lora: ownLora(lora), pair: { wBase: ownTensor(pair.wBase), wAligned: ownTensor(pair.wAligned) }, alignmentInto: alignmentInto && own(alignmentInto) };
    const views = [moved.lora.loraA, moved.lora.loraB, moved.pair.wBase, moved.pair.wAligned].map((t): ArrayBufferView => t.bytes);
    const exchange = ownExchange(subspace);
    return this.call(
      { op: "project", provider, ...moved, keep, operator, subspace: exchange },
      buffersOf([...views, ...(moved.alignmentInto ? [moved.alignmentInto] : []), ...exchangeViews(exchange)]),
    );
  }

  /** One module from a known V; moved like `project`'s buffers. V's comes back in `buffers`, unless it was kept warm. */
  projectWith(
    provider: ExecutionProvider,
    lora: LoraBytes,
    alignment: { v: Float32Array; wBaseNormSq: number; wAlignedNormSq: number },
    keep: string | null = null,
    operator: Operator = DEFAULT_OPERATOR,
    subspace: SubspaceExchange = NO_SUBSPACE_EXCHANGE,
  ): Promise<ProjectionReply> {
    const moved = { lora: ownLora(lora), v: own(alignment.v) };
    const exchange = ownExchange(subspace);
    return this.call(
      { op: "projectWith", provider, ...alignment, ...moved, keep, operator, subspace: exchange },
      buffersOf([moved.lora.loraA.bytes, moved.lora.loraB.bytes, moved.v, ...exchangeViews(exchange)]),
    );
  }

  /**
   * One module from the V the thread holds warm under `warm` (leased by leaseWarm): only the LoRA factors travel,
   * and a cached subspace when the thread holds none warm.
   */
  projectWarm(provider: ExecutionProvider, lora: LoraBytes, warm: string, operator: Operator = DEFAULT_OPERATOR, subspace: SubspaceExchange = NO_SUBSPACE_EXCHANGE): Promise<ProjectionReply> {
    const moved = ownLora(lora);
    const exchange = ownExchange(subspace);
    return this.call({ op: "projectWarm", provider, lora: moved, warm, operator, subspace: exchange }, buffersOf([moved.loraA.bytes, moved.loraB.bytes, ...exchangeViews(exchange)]));
  }

  /**
   * Sets the warm pairs' budget to `maxBytes` and leases, for one run, those of `ids` that the thread holds: they
   * stay until releaseWarm, so the run may plan them as warm. `subspaceTags` (beside `ids`): also ask which hold the
   * subspace the run needs, so that the run reads from disk only those that do not.
   */
  leaseWarm(maxBytes: number, ids: readonly string[], subspaceTags?: readonly (string | null)[]): Promise<WarmLease> {
    return this.call({ op: "leaseWarm", maxBytes, ids, ...(subspaceTags ? { subspaceTags } : {}) });
  }

  releaseWarm(lease: number): Promise<void> {
    return this.call({ op: "releaseWarm", lease });
  }

  /** How many modules' V the thread holds warm, their bytes and the budget. */
  warmStatus(): Promise<WarmStatus> {
    return this.call({ op: "warmStatus" });
  }

  /** Opens the full fine-tune graph's session for `choice`, as `open` does the LoRA graphs'. */
  openFull(choice: ExecutionProviderChoice): Promise<OpenedProvider> {
    return this.call({ op: "openFull", choice });
  }

  /**
   * One module of a full fine-tune: its three weights moved to the thread (not copied: the caller must not use them
   * afterwards), decoded and computed there; they come back in `buffers`, W_aligned + C ΔW as `variant`.
   */
  fullDelta(provider: ExecutionProvider, module: FullModuleBytes): Promise<FullDeltaReply> {
    const moved = { ...module, wBase: ownTensor(module.wBase), wAligned: ownTensor(module.wAligned), wFinetuned: ownTensor(module.wFinetuned) };
    return this.call({ op: "fullDelta", provider, module: moved }, buffersOf([moved.wBase.bytes, moved.wAligned.bytes, moved.wFinetuned.bytes]));
  }
}

/**
 * A view that is its buffer's only one, so that moving the buffer moves just it: as it is when it already is (the
 * reads of a run make such views), else a copy. Posting a view of a larger buffer would copy, or move, all of it.
 */
function own<T extends Uint8Array | Float32Array | Float64Array>(view: T): T {
  return view.byteOffset === 0 && view.byteLength === view.buffer.byteLength ? view : (view.slice() as T);
}

const ownTensor = (tensor: RawTensor): RawTensor => ({ ...tensor, bytes: own(tensor.bytes) });
const ownLora = (lora: LoraBytes): LoraBytes => ({ ...lora, loraA: ownTensor(lora.loraA), loraB: ownTensor(lora.loraB) });

function ownExchange(exchange: SubspaceExchange): SubspaceExchange {
  const { cached } = exchange;
  return cached ? { ...exchange, cached: { ...cached, u: own(cached.u), sigma: own(cached.sigma) } } : exchange;
}

const exchangeViews = (exchange: SubspaceExchange): ArrayBufferView[] => (exchange.cached ? [exchange.cached.u, exchange.cached.sigma] : []);

function buffersOf(views: ReadonlyArray<ArrayBufferView>): ArrayBuffer[] {
  return [...new Set(views.map((view) => view.buffer as ArrayBuffer))];
}
