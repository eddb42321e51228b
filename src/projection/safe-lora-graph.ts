import { AttributeType, ElemType, encodeModel, type OnnxNode, type OnnxValueInfo } from "./onnx-proto.js";

/** Graph input and output names; sessions feed and read them by these. */
export const GraphInput = { wBase: "w_base", wAligned: "w_aligned", alignment: "v", loraA: "lora_a", loraB: "lora_b", sketch: "x" } as const;
export const GraphOutput = {
  /** V = W_aligned − W_base, fp32, [d_out, d_in] (the fused graph that hands V out, for the cache and warm pairs). */
  alignment: "v_out",
  /** ‖V‖_F², fp32 scalar; zero means the pair does not differ in this module. */
  vNormSq: "v_norm_sq",
  /** ‖W_base‖_F² and ‖W_aligned‖_F², fp32 scalars: how far apart and how alike the pair is here. */
  wBaseNormSq: "w_base_norm_sq",
  wAlignedNormSq: "w_aligned_norm_sq",
  /** C·B = V (Vᵀ B) / ‖V‖_F, fp32, [d_out, r]. */
  projectedB: "projected_b",
  /** ⟨CΔW, ΔW⟩_F = tr((Bᵀ C B) A Aᵀ), fp64. */
  dot: "dot",
  /** ‖ΔW‖_F² = tr((Bᵀ B) A Aᵀ), fp64. */
  updateNormSq: "update_norm_sq",
  /** ‖CΔW‖_F² = tr((CB)ᵀ CB A Aᵀ), fp64. */
  projectedUpdateNormSq: "projected_update_norm_sq",
  /** ‖B‖_F² and ‖CB‖_F², fp64, for the report's ‖CB‖/‖B‖. */
  bNormSq: "b_norm_sq",
  projectedBNormSq: "projected_b_norm_sq",
  /** The subspace operator's sketch products: V·X or Vᵀ·X, fp32. */
  sketchProduct: "v_x",
} as const;

const OPSET = 17;
const IR_VERSION = 8;
const INT_ATTRIBUTES = new Set(["to", "transA", "transB", "keepdims"]);

function tensor(name: string, elemType: number, dims: Array<number | string>): OnnxValueInfo {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((dim) => (typeof dim === "number" ? { dimValue: dim } : { dimParam: dim })) } } },
  };
}

function node(opType: string, input: string[], output: string, attrs: Record<string, number> = {}): OnnxNode {
  return {
    opType,
    input,
    output: [output],
    name: output,
    attribute: Object.entries(attrs).map(([name, value]) =>
      INT_ATTRIBUTES.has(name) ? { name, type: AttributeType.INT, i: value } : { name, type: AttributeType.FLOAT, f: value },
    ),
  };
}

const scalar = (name: string, elemType: number = ElemType.FLOAT) => tensor(name, elemType, []);
const out = GraphOutput;

/** V and the pair's norms from the two weights. `v` is the name the projection nodes read V from. */
function alignmentNodes(v: string): OnnxNode[] {
  return [
    node("Sub", [GraphInput.wAligned, GraphInput.wBase], v),
    node("ReduceSumSquare", [GraphInput.wBase], out.wBaseNormSq, { keepdims: 0 }),
    node("ReduceSumSquare", [GraphInput.wAligned], out.wAlignedNormSq, { keepdims: 0 }),
  ];
}

/**
 * C·B and the cosine's traces from V and the LoRA factors, in the low-rank form (README, "How it works"): the
 * d_out × d_out operator C = V Vᵀ / ‖V‖_F is never formed. The large products (Vᵀ B, V M) run in fp32 as the
 * reference does; the r × r Gram matrices and traces behind the cosine run in fp64.
 */
function projectionNodes(v: string): OnnxNode[] {
  const { loraA, loraB } = GraphInput;
  return [
    node("ReduceSumSquare", [v], out.vNormSq, { keepdims: 0 }),
    node("Sqrt", [out.vNormSq], "v_norm"),
    // M = Vᵀ B without materialising Vᵀ: Gemm reads V transposed.
    node("Gemm", [v, loraB], "m", { transA: 1 }),
    node("MatMul", [v, "m"], "v_m"),
    node("Div", ["v_m", "v_norm"], out.projectedB),
    node("Cast", [loraA], "a64", { to: ElemType.DOUBLE }),
    node("Cast", [loraB], "b64", { to: ElemType.DOUBLE }),
    node("Cast", [out.projectedB], "cb64", { to: ElemType.DOUBLE }),
    node("Gemm", ["a64", "a64"], "h", { transB: 1 }),
    node("Gemm", ["b64", "cb64"], "g_dot", { transA: 1 }),
    node("Gemm", ["b64", "b64"], "g_update", { transA: 1 }),
    node("Gemm", ["cb64", "cb64"], "g_projected", { transA: 1 }),
    // tr(G H) = Σ G ⊙ Hᵀ, and H = A Aᵀ is symmetric.
    node("Mul", ["g_dot", "h"], "gh_dot"),
    node("ReduceSum", ["gh_dot"], out.dot, { keepdims: 0 }),
    node("Mul", ["g_update", "h"], "gh_update"),
    node("ReduceSum", ["gh_update"], out.updateNormSq, { keepdims: 0 }),
    node("Mul", ["g_projected", "h"], "gh_projected"),
    node("ReduceSum", ["gh_projected"], out.projectedUpdateNormSq, { keepdims: 0 }),
    node("ReduceSumSquare", ["b64"], out.bNormSq, { keepdims: 0 }),
    node("ReduceSumSquare", ["cb64"], out.projectedBNormSq, { keepdims: 0 }),
  ];
}

const weightInputs = [tensor(GraphInput.wBase, ElemType.FLOAT, ["d_out", "d_in"]), tensor(GraphInput.wAligned, ElemType.FLOAT, ["d_out", "d_in"])];
const loraInputs = [tensor(GraphInput.loraA, ElemType.FLOAT, ["r", "d_in"]), tensor(GraphInput.loraB, ElemType.FLOAT, ["d_out", "r"])];
const pairOutputs = [scalar(out.wBaseNormSq), scalar(out.wAlignedNormSq)];
const projectionOutputs = [
  tensor(out.projectedB, ElemType.FLOAT, ["d_out", "r"]),
  scalar(out.vNormSq),
  ...[out.dot, out.updateNormSq, out.projectedUpdateNormSq, out.bNormSq, out.projectedBNormSq].map((name) => scalar(name, ElemType.DOUBLE)),
];

function model(name: string, nodes: OnnxNode[], input: OnnxValueInfo[], output: OnnxValueInfo[]): Uint8Array {
  return encodeModel({
    irVersion: IR_VERSION,
    producerName: "safe-lora",
    producerVersion: "1",
    docString: "Safe LoRA for one LoRA module (low-rank form)",
    opsetImport: [{ domain: "", version: OPSET }],
    graph: { name, node: nodes, input, output },
  });
}

/** The whole computation from the two weights: used when V is not cached. Shapes are symbolic. */
export function buildSafeLoraModel(): Uint8Array {
  return model("safe_lora_module", [...alignmentNodes("v"), ...projectionNodes("v")], [...weightInputs, ...loraInputs], [...projectionOutputs, ...pairOutputs]);
}

/**
 * The whole computation, handing out V as well: one run for a module whose V is kept (disk cache, warm pairs),
 * the same nodes as the fused graph with V as one more output, rather than the alignment and projection halves
 * run one after the other.
 */
export function buildSafeLoraModelWithAlignment(): Uint8Array {
  const v = out.alignment;
  return model(
    "safe_lora_module_with_alignment",
    [...alignmentNodes(v), ...projectionNodes(v)],
    [...weightInputs, ...loraInputs],
    [...projectionOutputs, ...pairOutputs, tensor(v, ElemType.FLOAT, ["d_out", "d_in"])],
  );
}

/** The projection from a given V (cached or just computed). */
export function buildProjectionModel(): Uint8Array {
  return model("safe_lora_projection", projectionNodes(GraphInput.alignment), [tensor(GraphInput.alignment, ElemType.FLOAT, ["d_out", "d_in"]), ...loraInputs], projectionOutputs);
}

/**
 * The subspace operator's large products (subspace-operator.ts, AlignmentProducts): V·X for X [d_in, w], or, with
 * `transposed`, Vᵀ·X for X [d_out, w] (Gemm reads V transposed, as the projection does). fp32, like the graph's.
 */
export function buildSketchProductModel(transposed: boolean): Uint8Array {
  const v = tensor(GraphInput.alignment, ElemType.FLOAT, ["d_out", "d_in"]);
  const x = tensor(GraphInput.sketch, ElemType.FLOAT, [transposed ? "d_out" : "d_in", "w"]);
  const product = transposed ? node("Gemm", [GraphInput.alignment, GraphInput.sketch], out.sketchProduct, { transA: 1 }) : node("MatMul", [GraphInput.alignment, GraphInput.sketch], out.sketchProduct);
  return model(transposed ? "sketch_product_transposed" : "sketch_product", [product], [v, x], [tensor(out.sketchProduct, ElemType.FLOAT, [transposed ? "d_in" : "d_out", "w"])]);
}
