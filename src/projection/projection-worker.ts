// The projection thread (src/projection/projection-thread.ts starts it): one per process, holding one long-lived
// onnxruntime session per execution provider. onnxruntime-node's run() is synchronous, so it runs here, with the
// decoding of the stored weights to fp32, and the main thread's event loop stays free.
import { parentPort } from "node:worker_threads";
import { decodeToFloat32 } from "../safetensors/dtype.js";
import { ScratchBuffer } from "../safetensors/scratch-buffer.js";
import type { ExecutionProvider, ExecutionProviderChoice } from "./execution-provider.js";
import { FullDeltaSession } from "./full-delta-session.js";
import {
  toThreadError,
  type FullDeltaReply,
  type LoraBytes,
  type PairBytes,
  type ProjectionReply,
  type ProjectionRequest,
  type RawTensor,
  type SubspaceExchange,
  type WarmLease,
  type WarmStatus,
} from "./projection-messages.js";
import { ProjectionSession, type Alignment, type LoraFactors, type ModuleProjection, type SubspaceSource } from "./projection-session.js";
import type { Operator } from "./operator.js";
import { openFirstAvailable, type OpenedProvider } from "./provider-loading.js";
import { chooseRank, randomizedSvd, sketchWidth, subspaceProjection, subspaceTag, SUBSPACE_SEED, type Subspace } from "./subspace-operator.js";
import { WarmPairs } from "./warm-pairs.js";

const sessions = new Map<ExecutionProvider, Promise<ProjectionSession>>();
/** The full fine-tune graph's sessions, per provider, as long-lived as the LoRA ones. */
const fullSessions = new Map<ExecutionProvider, Promise<FullDeltaSession>>();
/** What `auto` came to, per graph, found once: which providers load does not change while the process runs. */
const auto = new Map<"lora" | "full", Promise<OpenedProvider>>();
/** V of recently used pairs, for the process's runs; its budget comes with each run (0 until one asks). */
const warm = new WarmPairs();
/** Decode buffers for the pair's weights, reused by every module: the thread's memory is one module's worth. */
const scratch = { base: new ScratchBuffer(), aligned: new ScratchBuffer(), finetuned: new ScratchBuffer() };

/** The session of `provider` in `cache`, created once; a provider that failed to load is tried again (and reported again) next time. */
function cached<S>(cache: Map<ExecutionProvider, Promise<S>>, provider: ExecutionProvider, create: (provider: ExecutionProvider) => Promise<S>): Promise<S> {
  let opened = cache.get(provider);
  if (!opened) {
    opened = create(provider);
    opened.catch(() => cache.delete(provider));
    cache.set(provider, opened);
  }
  return opened;
}

const session = (provider: ExecutionProvider) => cached(sessions, provider, (p) => ProjectionSession.create(p));
const fullSession = (provider: ExecutionProvider) => cached(fullSessions, provider, (p) => FullDeltaSession.create(p));

function open<S>(graph: "lora" | "full", choice: ExecutionProviderChoice, create: (provider: ExecutionProvider) => Promise<S>): Promise<OpenedProvider> {
  const opened = () => openFirstAvailable(choice, create).then(({ provider, fallbacks }) => ({ provider, fallbacks }));
  if (choice !== "auto") return opened();
  let found = auto.get(graph);
  if (!found) {
    found = opened();
    // Only the CPU failing makes auto fail; that is retried like a named provider.
    found.catch(() => auto.delete(graph));
    auto.set(graph, found);
  }
  return found;
}

function factors(lora: LoraBytes): LoraFactors {
  const { name, dOut, dIn, rank } = lora;
  return { name, dOut, dIn, rank, loraA: decodeToFloat32(lora.loraA.bytes, lora.loraA.dtype), loraB: decodeToFloat32(lora.loraB.bytes, lora.loraB.dtype) };
}

/** fp32 weights are used where they are, in the buffer moved here; others are decoded into the thread's scratch. */
function floats(tensor: RawTensor, into: ScratchBuffer): Float32Array {
  const { bytes, dtype } = tensor;
  if (dtype === "F32" && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return into.decode(bytes, dtype);
}

function weights(pair: PairBytes) {
  return { wBase: floats(pair.wBase, scratch.base), wAligned: floats(pair.wAligned, scratch.aligned) };
}

/** An output that owns its whole buffer can be transferred as it is; anything else is copied once. */
function owned(values: Float32Array): Float32Array {
  return values.byteOffset === 0 && values.byteLength === values.buffer.byteLength ? values : values.slice();
}

function ownedProjection(projection: ModuleProjection): ModuleProjection {
  return { ...projection, projectedB: owned(projection.projectedB) };
}

/** V of a module in a buffer of its own (onnxruntime's output may share one), so that keeping it keeps no more. */
function ownAlignment(alignment: Alignment): Alignment {
  return { ...alignment, v: owned(alignment.v) };
}

/**
 * The operator on the graph's figures: `paper` as the graph gave them; `subspace` replaces C·B and the cosine's
 * traces by those of P = U_k U_kᵀ, from U found warm beside V under `warmId`, else the disk cache's (`exchange`),
 * else computed here; what it used is then kept beside V. The sketch's products with V run in onnxruntime (in TS
 * they took 85 times the paper graph's time on a 4096 × 4096 module); its orthonormalisation and small
 * eigenproblem in TS, in Float64. `handedBack`: a subspace computed here, when the exchange asks for it.
 */
async function applyOperator(
  projector: ProjectionSession,
  operator: Operator,
  projection: ModuleProjection,
  v: Float32Array,
  lora: LoraFactors,
  warmId: string | null,
  exchange: SubspaceExchange,
): Promise<{ projection: ModuleProjection; handedBack: Subspace | null }> {
  // V = 0: nothing to project onto; the module is skipped with its graph figures, as under the paper operator.
  if (operator.kind === "paper" || projection.vNormSq === 0) return { projection, handedBack: null };
  const width = sketchWidth(operator, lora.dOut, lora.dIn);
  const tag = subspaceTag(width);
  const held = warmId === null ? undefined : warm.subspace(warmId, tag);
  let subspace: Subspace | undefined = held ?? exchange.cached ?? undefined;
  const source: SubspaceSource = held ? "warm" : subspace ? "cache" : "computed";
  let computed: Subspace | null = null;
  if (!subspace) {
    subspace = computed = await randomizedSvd({ rows: lora.dOut, cols: lora.dIn, data: v }, width, SUBSPACE_SEED, projector.alignmentProducts(v, lora.dOut, lora.dIn));
  }
  const keptWarm = warmId !== null && warm.keepSubspace(warmId, tag, subspace);
  const rank = chooseRank(operator, subspace);
  // Moved to the main thread unless the warm pairs hold it too: then the reply takes a copy.
  const handedBack = computed && exchange.handBack ? (keptWarm ? { ...computed, u: computed.u.slice(), sigma: computed.sigma.slice() } : computed) : null;
  return { projection: { ...projection, ...subspaceProjection(subspace, rank.rank, lora), subspace: { ...rank, source } }, handedBack };
}

/** Leases the held ones of `ids`; with `subspaceTags` (beside `ids`), also says which hold that subspace beside V. */
function leaseWarm(ids: readonly string[], subspaceTags: readonly (string | null)[] | undefined): WarmLease {
  const lease = warm.lease(ids);
  if (!subspaceTags) return lease;
  const subspaceResident = ids.map((id, index) => {
    const tag = subspaceTags[index];
    return typeof tag === "string" && warm.subspace(id, tag) !== undefined;
  });
  return { ...lease, subspaceResident };
}

async function handle(request: ProjectionRequest): Promise<{ value: unknown; transfer: ArrayBuffer[] }> {
  switch (request.op) {
    case "open":
      return { value: await open("lora", request.choice, session), transfer: [] };
    case "openFull":
      return { value: await open("full", request.choice, fullSession), transfer: [] };
    case "fullDelta": {
      const { module } = request;
      const { variant, ...figures } = await (await fullSession(request.provider)).compute({ ...module, ...weights(module), wFinetuned: floats(module.wFinetuned, scratch.finetuned) });
      const buffers = [...new Set([module.wBase, module.wAligned, module.wFinetuned].map((tensor) => tensor.bytes.buffer as ArrayBuffer))];
      const reply: FullDeltaReply = { figures, variant: owned(variant), buffers };
      return { value: reply, transfer: [...new Set([reply.variant.buffer as ArrayBuffer, ...buffers])] };
    }
    case "leaseWarm":
      warm.setBudget(request.maxBytes);
      return { value: leaseWarm(request.ids, request.subspaceTags), transfer: [] };
    case "releaseWarm":
      warm.release(request.lease);
      return { value: null, transfer: [] };
    case "warmStatus":
      return { value: { entries: warm.size, bytes: warm.bytes, maxBytes: warm.maxBytes } satisfies WarmStatus, transfer: [] };
  }
  const projector = await session(request.provider);
  const lora = factors(request.lora);
  let reply: ProjectionReply;
  if (request.op === "projectWarm") {
    const alignment = warm.get(request.warm);
    // A lease keeps it: missing means the main thread planned from a lease this thread never gave (a bug).
    if (!alignment) throw new Error(`warm pair entry ${request.warm} is not held; it was leased for this run`);
    const { projection, handedBack } = await applyOperator(projector, request.operator, await projector.projectWith(alignment, lora), alignment.v, lora, request.warm, request.subspace);
    reply = { projection: ownedProjection(projection), buffers: [], ...(handedBack ? { subspace: handedBack } : {}) };
  } else if (request.op === "projectWith") {
    const { v, wBaseNormSq, wAlignedNormSq, keep } = request;
    const kept = keep !== null && warm.keep(keep, { v, wBaseNormSq, wAlignedNormSq });
    const computed = await projector.projectWith({ v, wBaseNormSq, wAlignedNormSq }, lora);
    const { projection, handedBack } = await applyOperator(projector, request.operator, computed, v, lora, kept ? keep : null, request.subspace);
    // A V kept warm stays here; any other goes back to the caller's pool.
    reply = { projection: ownedProjection(projection), buffers: kept ? [] : [v.buffer as ArrayBuffer], ...(keep !== null ? { kept } : {}), ...(handedBack ? { subspace: handedBack } : {}) };
  } else {
    const { pair, keep } = request;
    const module = { ...lora, ...weights(pair) };
    const buffers = [pair.wBase.bytes.buffer as ArrayBuffer, pair.wAligned.bytes.buffer as ArrayBuffer];
    // The subspace operator needs V itself: the graph that hands it out.
    if (request.alignmentInto || keep !== null || request.operator.kind !== "paper") {
      const computed = await projector.projectKeepingAlignment(module);
      const alignment = ownAlignment(computed.alignment);
      const kept = keep !== null && warm.keep(keep, alignment);
      const { projection, handedBack } = await applyOperator(projector, request.operator, computed.projection, alignment.v, lora, kept ? keep : null, request.subspace);
      const into = request.alignmentInto;
      if (into) into.set(alignment.v);
      reply = {
        projection: ownedProjection(projection),
        buffers,
        ...(into ? { alignment: { ...alignment, v: into } } : {}),
        ...(keep !== null ? { kept } : {}),
        ...(handedBack ? { subspace: handedBack } : {}),
      };
    } else {
      reply = { projection: ownedProjection(await projector.project(module)), buffers };
    }
  }
  const outputs = [
    reply.projection.projectedB.buffer as ArrayBuffer,
    ...(reply.alignment ? [reply.alignment.v.buffer as ArrayBuffer] : []),
    ...(reply.subspace ? [reply.subspace.u.buffer as ArrayBuffer, reply.subspace.sigma.buffer as ArrayBuffer] : []),
  ];
  return { value: reply, transfer: [...new Set([...outputs, ...reply.buffers])] };
}

const port = parentPort!;
// One request at a time, in order: the scratch buffers and the sessions are the thread's own.
let queue: Promise<void> = Promise.resolve();
port.on("message", (message: { id: number; request: ProjectionRequest } | { stop: true }) => {
  if ("stop" in message) {
    // After the requests before it, never during one: ending the thread while onnxruntime's native run is under
    // way can abort the whole process (the binding throws a Napi::Error that nothing catches).
    queue = queue.then(() => process.exit(0));
    return;
  }
  const { id, request } = message;
  queue = queue.then(async () => {
    try {
      const { value, transfer } = await handle(request);
      port.postMessage({ id, ok: value }, transfer);
    } catch (error) {
      port.postMessage({ id, error: toThreadError(error) });
    }
  });
});
