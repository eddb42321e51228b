import * as ort from "onnxruntime-node";
import { SafeLoraError } from "../errors.js";
// Types only: the projection thread loads this module, and the choice's schema (zod) has no business there.
import type { ExecutionProvider } from "./execution-provider.js";
import { knownMissing, loadFailure, ProviderUnavailable } from "./provider-loading.js";
import type { AlignmentProducts, SubspaceRank } from "./subspace-operator.js";

export type SubspaceSource = "warm" | "cache" | "computed";
import { GraphInput, GraphOutput, buildProjectionModel, buildSafeLoraModel, buildSafeLoraModelWithAlignment, buildSketchProductModel } from "./safe-lora-graph.js";

/** One module's LoRA factors, fp32 row-major. */
export interface LoraFactors {
  readonly name: string;
  readonly dOut: number;
  readonly dIn: number;
  readonly rank: number;
  /** [r, d_in] */
  readonly loraA: Float32Array;
  /** [d_out, r] */
  readonly loraB: Float32Array;
}

/** One module's factors and the pair's weights, fp32 row-major. */
export interface ModuleTensors extends LoraFactors {
  /** [d_out, d_in] */
  readonly wBase: Float32Array;
  /** [d_out, d_in] */
  readonly wAligned: Float32Array;
}

/** What the pair contributes to one module: V and the two weights' squared norms. This is what is cached. */
export interface Alignment {
  /** V = W_aligned − W_base, [d_out, d_in]. */
  readonly v: Float32Array;
  readonly wBaseNormSq: number;
  readonly wAlignedNormSq: number;
}

/** What the graph computes for one module; see GraphOutput for the meaning of each figure. */
export interface ModuleProjection {
  readonly projectedB: Float32Array;
  readonly vNormSq: number;
  readonly wBaseNormSq: number;
  readonly wAlignedNormSq: number;
  readonly dot: number;
  readonly updateNormSq: number;
  readonly projectedUpdateNormSq: number;
  readonly bNormSq: number;
  readonly projectedBNormSq: number;
  /** With the subspace operator: the k it used, the energy of ‖V‖_F² it captures, and whether a cap bound k. */
  readonly subspace?: SubspaceRank & {
    /** Where U_k came from: held warm beside V in the thread, the disk cache (sent with the request), or computed now. */
    readonly source: SubspaceSource;
  };
}

// onnxruntime logs provider load failures itself; we report them as one clear error instead.
ort.env.logLevel = "fatal";

type Results = ort.InferenceSession.OnnxValueMapType;

function finite(results: Results, name: string, module: string): number {
  const value = Number(results[name]!.data[0]);
  if (!Number.isFinite(value)) {
    throw new SafeLoraError(
      `module "${module}": its weights or LoRA factors contain NaN or infinite values; the adapter or the model files are damaged`,
      "non-finite",
    );
  }
  return value;
}

/**
 * The onnxruntime sessions of the Safe LoRA graphs, created once per run and reused for every module: the fused
 * graph (weights → result), the same with V as an output (for a V that is kept), and the projection from a known V.
 */
export class ProjectionSession {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();

  private constructor(
    /** The onnxruntime execution provider the sessions run on. */
    readonly executionProvider: ExecutionProvider,
  ) {}

  /**
   * Creates the fused session at once, so an unavailable execution provider fails before any work, with
   * ProviderUnavailable: what is missing and how to install it. A provider known to lack its library is not tried.
   */
  static async create(provider: ExecutionProvider): Promise<ProjectionSession> {
    const missing = knownMissing(provider);
    if (missing) throw new ProviderUnavailable(provider, missing);
    const session = new ProjectionSession(provider);
    await session.session("fused", buildSafeLoraModel);
    return session;
  }

  private session(key: string, build: () => Uint8Array): Promise<ort.InferenceSession> {
    let session = this.sessions.get(key);
    if (!session) {
      const provider = this.executionProvider;
      // No spinning: onnxruntime's pool threads would otherwise busy-wait between ops, taking the cores that the
      // reads of the next module (and the main thread's event loop) need. Same threads, same arithmetic.
      const options = { executionProviders: [provider], graphOptimizationLevel: "all", logSeverityLevel: 4, extra: { session: { intra_op: { allow_spinning: "0" } } } } as const;
      session = ort.InferenceSession.create(build(), options).catch((error: unknown) => {
        throw new ProviderUnavailable(provider, loadFailure(provider, error), error);
      });
      this.sessions.set(key, session);
    }
    return session;
  }

  private loraFeeds(lora: LoraFactors) {
    return {
      [GraphInput.loraA]: new ort.Tensor("float32", lora.loraA, [lora.rank, lora.dIn]),
      [GraphInput.loraB]: new ort.Tensor("float32", lora.loraB, [lora.dOut, lora.rank]),
    };
  }

  private weightFeeds(module: ModuleTensors | (Omit<ModuleTensors, "loraA" | "loraB" | "rank">)) {
    return {
      [GraphInput.wBase]: new ort.Tensor("float32", module.wBase, [module.dOut, module.dIn]),
      [GraphInput.wAligned]: new ort.Tensor("float32", module.wAligned, [module.dOut, module.dIn]),
    };
  }

  private projection(results: Results, module: string, pair: { wBaseNormSq: number; wAlignedNormSq: number }): ModuleProjection {
    const vNormSq = finite(results, GraphOutput.vNormSq, module);
    // With V = 0 the graph divides 0 by 0; the caller reports such a module and leaves it alone.
    const ifAligned = (name: string) => (vNormSq === 0 ? 0 : finite(results, name, module));
    return {
      projectedB: results[GraphOutput.projectedB]!.data as Float32Array,
      vNormSq,
      ...pair,
      dot: ifAligned(GraphOutput.dot),
      updateNormSq: finite(results, GraphOutput.updateNormSq, module),
      projectedUpdateNormSq: ifAligned(GraphOutput.projectedUpdateNormSq),
      bNormSq: finite(results, GraphOutput.bNormSq, module),
      projectedBNormSq: ifAligned(GraphOutput.projectedBNormSq),
    };
  }

  private pair(results: Results, module: string) {
    return { wBaseNormSq: finite(results, GraphOutput.wBaseNormSq, module), wAlignedNormSq: finite(results, GraphOutput.wAlignedNormSq, module) };
  }

  /** The whole computation from the two weights. */
  async project(module: ModuleTensors): Promise<ModuleProjection> {
    const session = await this.session("fused", buildSafeLoraModel);
    const results = await session.run({ ...this.weightFeeds(module), ...this.loraFeeds(module) });
    return this.projection(results, module.name, this.pair(results, module.name));
  }

  /**
   * The whole computation from the two weights, and V with the pair's norms, to be kept (disk cache, warm pairs):
   * one run of the fused graph, which also hands V out.
   */
  async projectKeepingAlignment(module: ModuleTensors): Promise<{ projection: ModuleProjection; alignment: Alignment }> {
    const session = await this.session("fused-with-alignment", buildSafeLoraModelWithAlignment);
    const results = await session.run({ ...this.weightFeeds(module), ...this.loraFeeds(module) });
    const pair = this.pair(results, module.name);
    return { projection: this.projection(results, module.name, pair), alignment: { v: results[GraphOutput.alignment]!.data as Float32Array, ...pair } };
  }

  /** The projection from a known V. */
  async projectWith(alignment: Alignment, lora: LoraFactors): Promise<ModuleProjection> {
    const session = await this.session("projection", buildProjectionModel);
    const results = await session.run({ [GraphInput.alignment]: new ort.Tensor("float32", alignment.v, [lora.dOut, lora.dIn]), ...this.loraFeeds(lora) });
    // The norms only: a projection that carried V would take it wherever the projection goes (to the main thread).
    const { wBaseNormSq, wAlignedNormSq } = alignment;
    return this.projection(results, lora.name, { wBaseNormSq, wAlignedNormSq });
  }

  /**
   * The subspace operator's products with one module's V [d_out, d_in], run by onnxruntime in fp32 (the sketch is
   * handed over as fp32 and the result read back as Float64 for the orthonormalisation).
   */
  alignmentProducts(v: Float32Array, dOut: number, dIn: number): AlignmentProducts {
    const vTensor = new ort.Tensor("float32", v, [dOut, dIn]);
    const run = async (transposed: boolean, x: Float64Array, width: number) => {
      const session = await this.session(transposed ? "sketch-transposed" : "sketch", () => buildSketchProductModel(transposed));
      const results = await session.run({ [GraphInput.alignment]: vTensor, [GraphInput.sketch]: new ort.Tensor("float32", Float32Array.from(x), [transposed ? dOut : dIn, width]) });
      return Float64Array.from(results[GraphOutput.sketchProduct]!.data as Float32Array);
    };
    return { times: (x, width) => run(false, x, width), transposedTimes: (x, width) => run(true, x, width) };
  }

  async release(): Promise<void> {
    const sessions = await Promise.allSettled(this.sessions.values());
    for (const result of sessions) if (result.status === "fulfilled") await result.value.release();
  }
}
