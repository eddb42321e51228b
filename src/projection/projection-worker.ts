// The projection thread (src/projection/projection-thread.ts starts it): one per process, holding one long-lived
// onnxruntime session per execution provider. onnxruntime-node's run() is synchronous, so it runs here, with the
// decoding of the stored weights to fp32, and the main thread's event loop stays free.
import { parentPort } from "node:worker_threads";
import { decodeToFloat32 } from "../safetensors/dtype.js";
import { ScratchBuffer } from "../safetensors/scratch-buffer.js";
import type { ExecutionProvider } from "./execution-provider.js";
import { toThreadError, type LoraBytes, type PairBytes, type ProjectionReply, type ProjectionRequest, type RawTensor } from "./projection-messages.js";
import { ProjectionSession, type LoraFactors, type ModuleProjection } from "./projection-session.js";

const sessions = new Map<ExecutionProvider, Promise<ProjectionSession>>();
/** Decode buffers for the pair's weights, reused by every module: the thread's memory is one module's worth. */
const scratch = { base: new ScratchBuffer(), aligned: new ScratchBuffer() };

function session(provider: ExecutionProvider): Promise<ProjectionSession> {
  let opened = sessions.get(provider);
  if (!opened) {
    opened = ProjectionSession.create(provider);
    // A provider that failed to load is tried again (and reported again) on the next request.
    opened.catch(() => sessions.delete(provider));
    sessions.set(provider, opened);
  }
  return opened;
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

async function handle(request: ProjectionRequest): Promise<{ value: unknown; transfer: ArrayBuffer[] }> {
  if (request.op === "open") {
    return { value: (await session(request.provider)).executionProvider, transfer: [] };
  }
  const projector = await session(request.provider);
  const lora = factors(request.lora);
  let reply: ProjectionReply;
  if (request.op === "projectWith") {
    const { v, wBaseNormSq, wAlignedNormSq } = request;
    const projection = ownedProjection(await projector.projectWith({ v, wBaseNormSq, wAlignedNormSq }, lora));
    reply = { projection, buffers: [v.buffer as ArrayBuffer] };
  } else {
    const { pair } = request;
    const module = { ...lora, ...weights(pair) };
    const buffers = [pair.wBase.bytes.buffer as ArrayBuffer, pair.wAligned.bytes.buffer as ArrayBuffer];
    if (request.alignmentInto) {
      const alignment = await projector.alignment(module);
      const v = request.alignmentInto;
      v.set(alignment.v);
      const projection = ownedProjection(await projector.projectWith({ ...alignment, v }, lora));
      reply = { projection, alignment: { ...alignment, v }, buffers };
    } else {
      reply = { projection: ownedProjection(await projector.project(module)), buffers };
    }
  }
  const outputs = [reply.projection.projectedB.buffer as ArrayBuffer, ...(reply.alignment ? [reply.alignment.v.buffer as ArrayBuffer] : [])];
  return { value: reply, transfer: [...new Set([...outputs, ...reply.buffers])] };
}

const port = parentPort!;
// One request at a time, in order: the scratch buffers and the sessions are the thread's own.
let queue: Promise<void> = Promise.resolve();
port.on("message", ({ id, request }: { id: number; request: ProjectionRequest }) => {
  queue = queue.then(async () => {
    try {
      const { value, transfer } = await handle(request);
      port.postMessage({ id, ok: value }, transfer);
    } catch (error) {
      port.postMessage({ id, error: toThreadError(error) });
    }
  });
});
