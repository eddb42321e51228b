import * as ort from "onnxruntime-node";
import { SafeLoraError } from "../errors.js";
import type { ExecutionProvider, ExecutionProviderChoice } from "./execution-provider.js";
import { FullDeltaInput, FullDeltaOutput, buildFullDeltaModel, productOrder, type ProductOrder } from "./full-delta-graph.js";
import { knownMissing, loadFailure, openFirstAvailable, ProviderUnavailable, type OpenedProvider } from "./provider-loading.js";

/** One module of a full fine-tune and of its pair, fp32 row-major [d_out, d_in]. */
export interface FullModuleWeights {
  readonly name: string;
  readonly dOut: number;
  readonly dIn: number;
  readonly wBase: Float32Array;
  readonly wAligned: Float32Array;
  readonly wFinetuned: Float32Array;
}

/** The figures of one module; see FullDeltaOutput for the meaning of each. */
export interface FullModuleFigures {
  readonly vNormSq: number;
  readonly wBaseNormSq: number;
  readonly wAlignedNormSq: number;
  readonly wFinetunedNormSq: number;
  readonly dot: number;
  readonly updateNormSq: number;
  readonly projectedUpdateNormSq: number;
}

/** What the graph computes for one module: W_aligned + C ΔW, and the figures. */
export interface FullModuleResult extends FullModuleFigures {
  /** W_aligned + C ΔW, fp32 [d_out, d_in]; meaningless (NaN) when V = 0, where nothing is projected. */
  readonly variant: Float32Array;
}

// onnxruntime logs provider load failures itself; they are reported as one clear error instead (as projection-session.ts).
ort.env.logLevel = "fatal";

/** Figures that divide by ‖V‖_F, and so are 0/0 when V = 0 (the module is then left alone and they are not read). */
const ALIGNED_ONLY = new Set<keyof FullModuleFigures>(["dot", "projectedUpdateNormSq"]);

/**
 * The onnxruntime sessions of the full fine-tune graph (full-delta-graph.ts), one per product order, created on
 * a provider and reused for every module. onnxruntime-node runs a session synchronously on the thread that calls
 * it, so the projection thread holds them (its `openFull` and `fullDelta` ops) and the event loop stays free.
 */
export class FullDeltaSession {
  private readonly sessions = new Map<ProductOrder, Promise<ort.InferenceSession>>();

  private constructor(readonly executionProvider: ExecutionProvider) {}

  /** Opens `choice` (auto: the first of cuda, webgpu, cpu that loads): an unavailable provider fails here, before any read. */
  static async open(choice: ExecutionProviderChoice): Promise<{ session: FullDeltaSession; provider: OpenedProvider }> {
    const { opened, provider, fallbacks } = await openFirstAvailable(choice, (candidate) => FullDeltaSession.create(candidate));
    return { session: opened, provider: { provider, fallbacks } };
  }

  /** A session on `provider`, both orders' models created at once, or ProviderUnavailable saying what is missing. */
  static async create(provider: ExecutionProvider): Promise<FullDeltaSession> {
    const missing = knownMissing(provider);
    if (missing) throw new ProviderUnavailable(provider, missing);
    const session = new FullDeltaSession(provider);
    try {
      await Promise.all((["update-first", "alignment-first"] as const).map((order) => session.session(order)));
    } catch (error) {
      await session.release();
      throw error;
    }
    return session;
  }

  private session(order: ProductOrder): Promise<ort.InferenceSession> {
    let session = this.sessions.get(order);
    if (!session) {
      const provider = this.executionProvider;
      // No spinning between ops, as for the LoRA graphs: the reads of the next module need the cores.
      const options = { executionProviders: [provider], graphOptimizationLevel: "all", logSeverityLevel: 4, extra: { session: { intra_op: { allow_spinning: "0" } } } } as const;
      session = ort.InferenceSession.create(buildFullDeltaModel(order), options).catch((error: unknown) => {
        throw new ProviderUnavailable(provider, loadFailure(provider, error), error);
      });
      this.sessions.set(order, session);
    }
    return session;
  }

  /** One module: the three weights in, W_aligned + C ΔW and the figures out. NaN or ∞ in the inputs is refused. */
  async compute(module: FullModuleWeights): Promise<FullModuleResult> {
    const dims = [module.dOut, module.dIn];
    const session = await this.session(productOrder(module.dOut, module.dIn));
    const results = await session.run({
      [FullDeltaInput.wBase]: new ort.Tensor("float32", module.wBase, dims),
      [FullDeltaInput.wAligned]: new ort.Tensor("float32", module.wAligned, dims),
      [FullDeltaInput.wFinetuned]: new ort.Tensor("float32", module.wFinetuned, dims),
    });
    const read = (name: keyof FullModuleFigures) => Number(results[FullDeltaOutput[name]]!.data[0]);
    const vNormSq = read("vNormSq");
    const names: Array<keyof FullModuleFigures> = ["vNormSq", "wBaseNormSq", "wAlignedNormSq", "wFinetunedNormSq", "dot", "updateNormSq", "projectedUpdateNormSq"];
    const figures = Object.fromEntries(names.map((name) => [name, vNormSq === 0 && ALIGNED_ONLY.has(name) ? 0 : read(name)])) as Record<keyof FullModuleFigures, number>;
    const damaged = names.find((name) => !Number.isFinite(figures[name]));
    if (damaged !== undefined) {
      throw new SafeLoraError(
        `"${module.name}": the base, aligned or fine-tuned weights contain NaN or infinite values (${damaged} is ${figures[damaged]}); one of the three checkpoints is damaged`,
        "non-finite",
      );
    }
    return { ...figures, variant: results[FullDeltaOutput.variant]!.data as Float32Array };
  }

  async release(): Promise<void> {
    const sessions = await Promise.allSettled(this.sessions.values());
    this.sessions.clear();
    for (const result of sessions) if (result.status === "fulfilled") await result.value.release();
  }
}
