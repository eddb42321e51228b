import { AttributeType, ElemType, encodeModel, floatTensor, int64Tensor, type OnnxAttribute, type OnnxNode, type OnnxTensor, type OnnxValueInfo } from "../projection/onnx-proto.js";
import type { LlamaShape } from "./llama-config.js";
import { EMBEDDING, FINAL_NORM, LM_HEAD, layerWeight, llamaWeightSlots } from "./llama-weights.js";

/** Graph input and output names; the session feeds and reads them by these. Weights are fed under their transformers names. */
export const LlamaGraphInput = { inputIds: "input_ids" } as const;
export const LlamaGraphOutput = { lastLogits: "last_logits" } as const;

/** The graph inputs of one adapted module's LoRA factors, named after the weight they adapt. */
export const loraInputNames = (weight: string) => ({ a: `${weight}::lora_A`, b: `${weight}::lora_B` });

/** One adapted linear layer as the graph applies it: y = W x + scale · B (A x). */
export interface LoraSlot {
  /** The transformers name of the adapted weight, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  readonly weight: string;
  readonly rank: number;
  /** alpha / r (alpha / √r with rsLoRA). */
  readonly scale: number;
  readonly dOut: number;
  readonly dIn: number;
}

/** The numbers besides sizes that the graph bakes in. */
export interface LlamaGraphSpec {
  readonly shape: LlamaShape;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
}

const OPSET = 17;
const IR_VERSION = 8;
/** torch.finfo(torch.float32).min: what transformers puts in the causal mask above the diagonal. */
const FLOAT32_MIN = -3.4028234663852886e38;

const int = (name: string, i: number): OnnxAttribute => ({ name, type: AttributeType.INT, i });
const ints = (name: string, values: number[]): OnnxAttribute => ({ name, type: AttributeType.INTS, ints: values });
const tensorAttribute = (name: string, t: OnnxTensor): OnnxAttribute => ({ name, type: AttributeType.TENSOR, t });

function valueInfo(name: string, elemType: number, dims: ReadonlyArray<number | string>): OnnxValueInfo {
  return { name, type: { tensorType: { elemType, shape: { dim: dims.map((dim) => (typeof dim === "number" ? { dimValue: dim } : { dimParam: dim })) } } } };
}

/**
 * RoPE's cos and sin for every position, [max_positions, head_dim], as transformers computes them in fp32:
 * inv_freq = 1 / θ^(2i/d), angle = position · inv_freq, the half-table repeated (cat(freqs, freqs)).
 */
export function ropeTables(shape: LlamaShape, theta: number): { cos: Float32Array; sin: Float32Array } {
  const { headDim, maxPositions } = shape;
  const half = headDim / 2;
  const invFreq = Array.from({ length: half }, (_, i) => Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim)))));
  const cos = new Float32Array(maxPositions * headDim);
  const sin = new Float32Array(maxPositions * headDim);
  for (let position = 0; position < maxPositions; position++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(position * invFreq[i]!);
      for (const column of [i, i + half]) {
        cos[position * headDim + column] = Math.cos(angle);
        sin[position * headDim + column] = Math.sin(angle);
      }
    }
  }
  return { cos, sin };
}

/** Nodes and constants of the graph being built; every helper returns the name of the value it produced. */
class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];

  op(opType: string, input: string[], output: string, attribute: OnnxAttribute[] = []): string {
    this.nodes.push({ opType, input, output: [output], name: output, attribute });
    return output;
  }

  constant(name: string, tensor: OnnxTensor): string {
    this.initializers.push({ ...tensor, name });
    return name;
  }
}

/**
 * transformers' LlamaForCausalLM for batch 1 as one ONNX graph: input_ids [seq] → the last position's logits
 * [1, vocab]. Activations are [seq, features]; attention runs as [kv_heads, group, seq, head_dim], where MatMul's
 * broadcasting over the group axis is transformers' repeat_kv (query head h reads kv head h ÷ group).
 *
 * Weights are graph inputs, not initializers: one fp32 copy of the model is fed to the base graph and to each
 * adapter's graph alike, instead of every session holding its own. Only what config.json determines (RoPE
 * tables, shapes, eps) is baked in. `loras` are the adapted linear layers, whose factors are inputs as well.
 */
export function buildLlamaModel(spec: LlamaGraphSpec, loras: readonly LoraSlot[]): Uint8Array {
  const { shape } = spec;
  const { hidden, heads, kvHeads, headDim, maxPositions } = shape;
  const group = heads / kvHeads;
  const g = new GraphBuilder();
  const loraByWeight = new Map(loras.map((lora) => [lora.weight, lora]));

  const { cos: cosTable, sin: sinTable } = ropeTables(shape, spec.ropeTheta);
  g.constant("rope_cos_table", floatTensor([maxPositions, headDim], cosTable));
  g.constant("rope_sin_table", floatTensor([maxPositions, headDim], sinTable));
  g.constant("rms_norm_eps", floatTensor([], [spec.rmsNormEps]));
  g.constant("attention_scale", floatTensor([], [1 / Math.sqrt(headDim)]));
  g.constant("zero", int64Tensor([1], [0]));
  // Trilu keeps k = 1 diagonals above the main one: the future positions each query must not see.
  g.constant("mask_diagonal_offset", int64Tensor([], [1]));
  g.constant("last_index", int64Tensor([1], [-1]));
  g.constant("query_heads_shape", int64Tensor([4], [-1, kvHeads, group, headDim]));
  g.constant("kv_heads_shape", int64Tensor([4], [-1, kvHeads, 1, headDim]));
  g.constant("attention_out_shape", int64Tensor([2], [-1, heads * headDim]));

  // Positions 0 … seq−1: the tables' first seq rows, and the causal mask (finfo.min above the diagonal, as transformers).
  const seq = g.op("Shape", [LlamaGraphInput.inputIds], "seq_len");
  const cos = g.op("Slice", ["rope_cos_table", "zero", seq, "zero"], "rope_cos");
  const sin = g.op("Slice", ["rope_sin_table", "zero", seq, "zero"], "rope_sin");
  const squareShape = g.op("Concat", [seq, seq], "mask_shape", [int("axis", 0)]);
  const filled = g.op("ConstantOfShape", [squareShape], "mask_filled", [tensorAttribute("value", floatTensor([1], [FLOAT32_MIN]))]);
  const mask = g.op("Trilu", [filled, "mask_diagonal_offset"], "causal_mask", [int("upper", 1)]);

  const rmsNorm = (x: string, weight: string, prefix: string) => {
    const squared = g.op("Mul", [x, x], `${prefix}.squared`);
    const variance = g.op("ReduceMean", [squared], `${prefix}.variance`, [ints("axes", [-1]), int("keepdims", 1)]);
    const std = g.op("Sqrt", [g.op("Add", [variance, "rms_norm_eps"], `${prefix}.variance_eps`)], `${prefix}.std`);
    const normed = g.op("Mul", [x, g.op("Reciprocal", [std], `${prefix}.rsqrt`)], `${prefix}.normed`);
    return g.op("Mul", [weight, normed], `${prefix}.out`);
  };

  // nn.Linear without bias, plus the LoRA update as PEFT adds it: result + lora_B(lora_A(x)) · scaling.
  const linear = (x: string, weight: string, prefix: string) => {
    const base = g.op("Gemm", [x, weight], `${prefix}.base`, [int("transB", 1)]);
    const lora = loraByWeight.get(weight);
    if (!lora) return base;
    const { a, b } = loraInputNames(weight);
    const down = g.op("Gemm", [x, a], `${prefix}.lora_down`, [int("transB", 1)]);
    const up = g.op("Gemm", [down, b], `${prefix}.lora_up`, [int("transB", 1)]);
    const scale = g.constant(`${prefix}.lora_scale`, floatTensor([], [lora.scale]));
    return g.op("Add", [base, g.op("Mul", [up, scale], `${prefix}.lora_scaled`)], `${prefix}.out`);
  };

  // x · cos + rotate_half(x) · sin, rotate_half(x) = cat(−x₂, x₁) over the last axis.
  const rope = (x: string, prefix: string) => {
    g.nodes.push({ opType: "Split", input: [x], output: [`${prefix}.x1`, `${prefix}.x2`], name: `${prefix}.split`, attribute: [int("axis", -1)] });
    const rotated = g.op("Concat", [g.op("Neg", [`${prefix}.x2`], `${prefix}.neg_x2`), `${prefix}.x1`], `${prefix}.rotated`, [int("axis", -1)]);
    return g.op("Add", [g.op("Mul", [x, cos], `${prefix}.x_cos`), g.op("Mul", [rotated, sin], `${prefix}.rotated_sin`)], `${prefix}.out`);
  };

  // [seq, heads·head_dim] → [kv_heads, group (1 for k and v), seq, head_dim]
  const toHeads = (x: string, headsShape: string, prefix: string) =>
    g.op("Transpose", [g.op("Reshape", [x, headsShape], `${prefix}.split_heads`)], `${prefix}.heads`, [ints("perm", [1, 2, 0, 3])]);

  let h = g.op("Gather", [EMBEDDING, LlamaGraphInput.inputIds], "embedded", [int("axis", 0)]);
  for (let layer = 0; layer < shape.layers; layer++) {
    const p = `layers.${layer}`;
    const x = rmsNorm(h, layerWeight(layer, "input_layernorm"), `${p}.input_layernorm`);
    const q = rope(toHeads(linear(x, layerWeight(layer, "self_attn.q_proj"), `${p}.q_proj`), "query_heads_shape", `${p}.q`), `${p}.q_rope`);
    const k = rope(toHeads(linear(x, layerWeight(layer, "self_attn.k_proj"), `${p}.k_proj`), "kv_heads_shape", `${p}.k`), `${p}.k_rope`);
    const v = toHeads(linear(x, layerWeight(layer, "self_attn.v_proj"), `${p}.v_proj`), "kv_heads_shape", `${p}.v`);
    const kT = g.op("Transpose", [k], `${p}.k_t`, [ints("perm", [0, 1, 3, 2])]);
    const scores = g.op("Mul", [g.op("MatMul", [q, kT], `${p}.qk`), "attention_scale"], `${p}.scores`);
    const probs = g.op("Softmax", [g.op("Add", [scores, mask], `${p}.masked`)], `${p}.probs`, [int("axis", -1)]);
    const context = g.op("MatMul", [probs, v], `${p}.context`);
    const merged = g.op(
      "Reshape",
      [g.op("Transpose", [context], `${p}.context_t`, [ints("perm", [2, 0, 1, 3])]), "attention_out_shape"],
      `${p}.context_merged`,
    );
    h = g.op("Add", [h, linear(merged, layerWeight(layer, "self_attn.o_proj"), `${p}.o_proj`)], `${p}.attention_residual`);

    const y = rmsNorm(h, layerWeight(layer, "post_attention_layernorm"), `${p}.post_attention_layernorm`);
    const gate = linear(y, layerWeight(layer, "mlp.gate_proj"), `${p}.gate_proj`);
    const silu = g.op("Mul", [gate, g.op("Sigmoid", [gate], `${p}.gate_sigmoid`)], `${p}.gate_silu`);
    const up = linear(y, layerWeight(layer, "mlp.up_proj"), `${p}.up_proj`);
    const down = linear(g.op("Mul", [silu, up], `${p}.gated`), layerWeight(layer, "mlp.down_proj"), `${p}.down_proj`);
    h = g.op("Add", [h, down], `${p}.out`);
  }
  // Only the last position's logits are needed (greedy decoding, probes): norm and lm_head run on one row.
  const last = g.op("Gather", [h, "last_index"], "last_hidden", [int("axis", 0)]);
  const logits = g.op("Gemm", [rmsNorm(last, FINAL_NORM, "norm"), LM_HEAD], LlamaGraphOutput.lastLogits, [int("transB", 1)]);

  const inputs = [
    valueInfo(LlamaGraphInput.inputIds, ElemType.INT64, ["seq"]),
    ...llamaWeightSlots(shape).map((slot) => valueInfo(slot.name, ElemType.FLOAT, slot.dims)),
    ...loras.flatMap((lora) => {
      const { a, b } = loraInputNames(lora.weight);
      return [valueInfo(a, ElemType.FLOAT, [lora.rank, lora.dIn]), valueInfo(b, ElemType.FLOAT, [lora.dOut, lora.rank])];
    }),
  ];
  return encodeModel({
    irVersion: IR_VERSION,
    producerName: "safe-lora",
    producerVersion: "1",
    docString: `LlamaForCausalLM forward pass (${shape.layers} layers, hidden ${hidden}), last-position logits${loras.length ? `, LoRA on ${loras.length} modules` : ""}`,
    opsetImport: [{ domain: "", version: OPSET }],
    graph: { name: "llama_causal_lm", node: g.nodes, input: inputs, output: [valueInfo(logits, ElemType.FLOAT, [1, shape.vocab])], initializer: g.initializers },
  });
}

