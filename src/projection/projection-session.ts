import * as ort from "onnxruntime-node";
import { SafeLoraError } from "../errors.js";
import { resolveExecutionProvider, type ExecutionProviderChoice } from "./execution-provider.js";
import { GraphInput, GraphOutput, buildSafeLoraModel } from "./safe-lora-graph.js";

/** The four fp32 tensors of one module, row-major. */
export interface ModuleTensors {
  readonly name: string;
  readonly dOut: number;
  readonly dIn: number;
  readonly rank: number;
  /** [d_out, d_in] */
  readonly wBase: Float32Array;
  /** [d_out, d_in] */
  readonly wAligned: Float32Array;
  /** [r, d_in] */
  readonly loraA: Float32Array;
  /** [d_out, r] */
  readonly loraB: Float32Array;
}

/** What the graph computes for one module; see GraphOutput for the meaning of each figure. */
export interface ModuleProjection {
  readonly projectedB: Float32Array;
  readonly vNormSq: number;
  readonly wBaseNormSq: number;
  readonly dot: number;
  readonly updateNormSq: number;
  readonly projectedUpdateNormSq: number;
  readonly bNormSq: number;
  readonly projectedBNormSq: number;
}

// onnxruntime logs provider load failures itself; we report them as one clear error instead.
ort.env.logLevel = "fatal";

/** One onnxruntime session of the Safe LoRA graph, reused for every module of a run. */
export class ProjectionSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    /** The execution provider the session runs on. */
    readonly executionProvider: string,
  ) {}

  static async create(choice: ExecutionProviderChoice): Promise<ProjectionSession> {
    const provider = resolveExecutionProvider(choice);
    try {
      const session = await ort.InferenceSession.create(buildSafeLoraModel(), {
        executionProviders: [provider],
        graphOptimizationLevel: "all",
        logSeverityLevel: 4,
      });
      return new ProjectionSession(session, provider);
    } catch (error) {
      const detail = (error as Error).message.split("\n")[0]?.slice(0, 200);
      throw new SafeLoraError(
        `execution provider "${provider}" is not available here (${detail}); use --ep cpu (or SAFE_LORA_EP=cpu)`,
        "execution-provider-unavailable",
        { cause: error },
      );
    }
  }

  async project(module: ModuleTensors): Promise<ModuleProjection> {
    const { dOut, dIn, rank } = module;
    const feeds = {
      [GraphInput.wBase]: new ort.Tensor("float32", module.wBase, [dOut, dIn]),
      [GraphInput.wAligned]: new ort.Tensor("float32", module.wAligned, [dOut, dIn]),
      [GraphInput.loraA]: new ort.Tensor("float32", module.loraA, [rank, dIn]),
      [GraphInput.loraB]: new ort.Tensor("float32", module.loraB, [dOut, rank]),
    };
    const results = await this.session.run(feeds);
    const scalar = (name: string): number => {
      const value = Number(results[name]!.data[0]);
      if (!Number.isFinite(value)) {
        throw new SafeLoraError(
          `module "${module.name}": its weights or LoRA factors contain NaN or infinite values; the adapter or the model files are damaged`,
          "non-finite",
        );
      }
      return value;
    };
    const vNormSq = scalar(GraphOutput.vNormSq);
    const projection = {
      projectedB: results[GraphOutput.projectedB]!.data as Float32Array,
      vNormSq,
      wBaseNormSq: scalar(GraphOutput.wBaseNormSq),
      // With V = 0 the graph divides 0 by 0; the caller reports such a module and leaves it alone.
      dot: vNormSq === 0 ? 0 : scalar(GraphOutput.dot),
      updateNormSq: scalar(GraphOutput.updateNormSq),
      projectedUpdateNormSq: vNormSq === 0 ? 0 : scalar(GraphOutput.projectedUpdateNormSq),
      bNormSq: scalar(GraphOutput.bNormSq),
      projectedBNormSq: vNormSq === 0 ? 0 : scalar(GraphOutput.projectedBNormSq),
    };
    return projection;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
