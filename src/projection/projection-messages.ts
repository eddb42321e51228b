import { SafeLoraError, type ErrorFix, type SafeLoraErrorCode } from "../errors.js";
import type { Dtype } from "../safetensors/dtype.js";
import type { ExecutionProvider, ExecutionProviderChoice } from "./execution-provider.js";
import type { Operator } from "./operator.js";
import type { ModuleProjection } from "./projection-session.js";
import type { FullModuleFigures } from "./full-delta-session.js";
import type { Subspace } from "./subspace-operator.js";

/**
 * What the main thread and the projection thread say to each other. Tensors travel as their stored bytes and
 * dtype, in transferred buffers: the thread decodes them, so neither decoding nor compute runs on the main thread.
 */
export interface RawTensor {
  readonly bytes: Uint8Array;
  /** As stored; one that is not a float dtype is refused where it is decoded, with the usual error. */
  readonly dtype: Dtype;
}

export interface LoraBytes {
  readonly name: string;
  readonly dOut: number;
  readonly dIn: number;
  readonly rank: number;
  readonly loraA: RawTensor;
  readonly loraB: RawTensor;
}

export interface PairBytes {
  readonly wBase: RawTensor;
  readonly wAligned: RawTensor;
}

/** One module of a full fine-tune and of its pair, as stored, [d_out, d_in]. */
export interface FullModuleBytes extends PairBytes {
  readonly name: string;
  readonly dOut: number;
  readonly dIn: number;
  readonly wFinetuned: RawTensor;
}

export interface FullDeltaReply {
  readonly figures: FullModuleFigures;
  /** W_aligned + C ΔW, fp32 [d_out, d_in] (moved here); meaningless when V = 0, where nothing is projected. */
  readonly variant: Float32Array;
  /** The input buffers, handed back for reuse by the next reads. */
  readonly buffers: readonly ArrayBuffer[];
}

/**
 * The subspace operator's U and σ between the disk cache and the thread, on the projecting requests. `cached`: a
 * subspace of this module's V read from the disk cache (moved, not copied), used unless the thread holds one warm.
 * `handBack`: return a subspace the thread computes for this request in the reply's `subspace`, for the disk cache.
 */
export interface SubspaceExchange {
  readonly cached: Subspace | null;
  readonly handBack: boolean;
}

export const NO_SUBSPACE_EXCHANGE: SubspaceExchange = { cached: null, handBack: false };

/**
 * `operator` on the projecting requests: `paper` runs the graph alone; `subspace` also needs V, computes (or finds
 * warm beside V) its top singular vectors, and replaces C·B and the cosine's traces by P·B's.
 */
export type ProjectionRequest =
  /**
   * Creates (or finds) the thread's session for a choice, so an unavailable provider fails before any read; `auto`
   * tries cuda, webgpu and cpu in turn. Answered with an OpenedProvider.
   */
  | { readonly op: "open"; readonly choice: ExecutionProviderChoice }
  /**
   * One module from the pair's weights. `alignmentInto`: also return V (copied into this buffer, fp32
   * [d_out, d_in]) and the weights' norms, for the cache. A buffer of the caller's, so that every V of a run
   * travels in the same few buffers, which the caller's pool reuses. `keep`: keep V in the thread's warm pairs
   * under this id (alignmentKeyId); it stays in the thread. Either way one run of the fused graph, with V as an
   * output, computes the module (its figures are those of the fused graph and of a cache hit, bit for bit).
   */
  | { readonly op: "project"; readonly provider: ExecutionProvider; readonly lora: LoraBytes; readonly pair: PairBytes; readonly alignmentInto: Float32Array | null; readonly keep: string | null; readonly operator: Operator; readonly subspace: SubspaceExchange }
  /** One module from a known V (a cache hit), fp32 [d_out, d_in]; `keep`: the thread keeps that V warm (it is not handed back). */
  | { readonly op: "projectWith"; readonly provider: ExecutionProvider; readonly lora: LoraBytes; readonly v: Float32Array; readonly wBaseNormSq: number; readonly wAlignedNormSq: number; readonly keep: string | null; readonly operator: Operator; readonly subspace: SubspaceExchange }
  /** One module from the V the thread holds warm under `warm`, which the run's lease keeps there. */
  | { readonly op: "projectWarm"; readonly provider: ExecutionProvider; readonly lora: LoraBytes; readonly warm: string; readonly operator: Operator; readonly subspace: SubspaceExchange }
  /**
   * Sets the warm pairs' budget and leases those of `ids` that are held, for one run. Answered with a WarmLease.
   * `subspaceTags`, beside `ids`: also say which hold a subspace under that tag (null: none wanted).
   */
  | { readonly op: "leaseWarm"; readonly maxBytes: number; readonly ids: readonly string[]; readonly subspaceTags?: readonly (string | null)[] }
  | { readonly op: "releaseWarm"; readonly lease: number }
  /** What the warm pairs hold (bench, tests). Answered with a WarmStatus. */
  | { readonly op: "warmStatus" }
  /** As `open`, for the full fine-tune graph (full-delta-session.ts): its own sessions, opened once per provider. */
  | { readonly op: "openFull"; readonly choice: ExecutionProviderChoice }
  /** One module of a full fine-tune: W_aligned + C ΔW and its figures. Answered with a FullDeltaReply. */
  | { readonly op: "fullDelta"; readonly provider: ExecutionProvider; readonly module: FullModuleBytes };

export interface WarmLease {
  readonly lease: number;
  /** Per id asked, whether its V is held (and leased). */
  readonly resident: readonly boolean[];
  /** Per id asked, whether a subspace under its tag is held beside V (only when tags were asked about). */
  readonly subspaceResident?: readonly boolean[];
}

export interface WarmStatus {
  readonly entries: number;
  readonly bytes: number;
  readonly maxBytes: number;
}

export interface ProjectionReply {
  /** The module's figures and C·B: nothing V-sized (V crosses only as `alignment.v`, when asked for). */
  readonly projection: ModuleProjection;
  /** V (in `alignmentInto`) and the pair's norms, when asked for. */
  readonly alignment?: { readonly v: Float32Array; readonly wBaseNormSq: number; readonly wAlignedNormSq: number };
  /** The input buffers, handed back for reuse by the next reads. */
  readonly buffers: readonly ArrayBuffer[];
  /** Whether V was kept warm, when asked to. */
  readonly kept?: boolean;
  /** The subspace the thread computed for this module, when the request asked for it back (moved, not copied). */
  readonly subspace?: Subspace;
}

/** An error as it crosses the thread boundary: a SafeLoraError keeps its message, code and fix. */
export type ThreadError =
  | { readonly kind: "safe-lora"; readonly message: string; readonly code: SafeLoraErrorCode; readonly fix: ErrorFix | null; readonly cause?: string }
  | { readonly kind: "bug"; readonly name: string; readonly message: string; readonly stack?: string };

export type ThreadMessage = { readonly id: number; readonly ok: unknown } | { readonly id: number; readonly error: ThreadError };

const describe = (cause: unknown) => (cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause));

export function toThreadError(error: unknown): ThreadError {
  if (error instanceof SafeLoraError) {
    return { kind: "safe-lora", message: error.message, code: error.code, fix: error.fix, ...(error.cause !== undefined ? { cause: describe(error.cause) } : {}) };
  }
  const { name, message, stack } = error instanceof Error ? error : { name: "Error", message: String(error), stack: undefined };
  return { kind: "bug", name, message, ...(stack ? { stack } : {}) };
}

/** The error the main thread throws for one that happened in the projection thread: the same SafeLoraError. */
export function fromThreadError(error: ThreadError): Error {
  if (error.kind === "safe-lora") {
    return new SafeLoraError(error.message, error.code, { ...(error.cause !== undefined ? { cause: new Error(error.cause) } : {}), ...(error.fix ? { fix: error.fix } : {}) });
  }
  const bug = new Error(error.message);
  bug.name = error.name;
  if (error.stack) bug.stack = `${error.stack}\n    (in the projection thread)`;
  return bug;
}
