import { AttributeType, ElemType, encodeModel, type OnnxNode, type OnnxValueInfo } from "./onnx-proto.js";

/** Graph input and output names; the session feeds and reads them by these. */
export const GraphInput = { wBase: "w_base", wAligned: "w_aligned", loraA: "lora_a", loraB: "lora_b" } as const;
export const GraphOutput = {
  /** C·B = V (Vᵀ B) / ‖V‖_F, fp32, [d_out, r]. */
  projectedB: "projected_b",
  /** ‖V‖_F², fp32 scalar; zero means the pair does not differ in this module. */
  vNormSq: "v_norm_sq",
  /** ⟨CΔW, ΔW⟩_F = tr((Bᵀ C B) A Aᵀ), fp64. */
  dot: "dot",
  /** ‖ΔW‖_F² = tr((Bᵀ B) A Aᵀ), fp64. */
  updateNormSq: "update_norm_sq",
  /** ‖CΔW‖_F² = tr((CB)ᵀ CB A Aᵀ), fp64. */
  projectedUpdateNormSq: "projected_update_norm_sq",
  /** ‖W_base‖_F², fp32 scalar, for the report's relative distance ‖V‖/‖W_base‖ between the pair. */
  wBaseNormSq: "w_base_norm_sq",
  /** ‖B‖_F² and ‖CB‖_F², fp64, for the report's ‖CB‖/‖B‖. */
  bNormSq: "b_norm_sq",
  projectedBNormSq: "projected_b_norm_sq",
} as const;

const OPSET = 17;
const IR_VERSION = 8;

function tensor(name: string, elemType: number, dims: Array<number | string>): OnnxValueInfo {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((dim) => (typeof dim === "number" ? { dimValue: dim } : { dimParam: dim })) },
      },
    },
  };
}

function node(opType: string, input: string[], output: string, attrs: Record<string, number> = {}): OnnxNode {
  return {
    opType,
    input,
    output: [output],
    name: output,
    attribute: Object.entries(attrs).map(([name, value]) =>
      name === "to" || name.startsWith("trans") || name === "keepdims"
        ? { name, type: AttributeType.INT, i: value }
        : { name, type: AttributeType.FLOAT, f: value },
    ),
  };
}

/**
 * Safe LoRA for one module as an ONNX graph, in the low-rank form of DESIGN.md §2: it never forms the
 * d_out × d_out operator C = V Vᵀ / ‖V‖_F. The large products (Vᵀ B and V M) run in fp32, as the reference
 * does; the r × r Gram matrices and traces behind the cosine run in fp64. Shapes are symbolic, so one
 * session serves every module of every model.
 */
export function buildSafeLoraModel(): Uint8Array {
  const { wBase, wAligned, loraA, loraB } = GraphInput;
  const out = GraphOutput;
  const nodes: OnnxNode[] = [
    node("Sub", [wAligned, wBase], "v"),
    node("ReduceSumSquare", ["v"], out.vNormSq, { keepdims: 0 }),
    node("Sqrt", [out.vNormSq], "v_norm"),
    node("ReduceSumSquare", [wBase], out.wBaseNormSq, { keepdims: 0 }),
    // M = Vᵀ B without materialising Vᵀ: Gemm reads V transposed.
    node("Gemm", ["v", loraB], "m", { transA: 1 }),
    node("MatMul", ["v", "m"], "v_m"),
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
  return encodeModel({
    irVersion: IR_VERSION,
    producerName: "safe-lora",
    producerVersion: "1",
    docString: "Safe LoRA projection of one LoRA module (low-rank form)",
    opsetImport: [{ domain: "", version: OPSET }],
    graph: {
      name: "safe_lora_module",
      node: nodes,
      input: [
        tensor(wBase, ElemType.FLOAT, ["d_out", "d_in"]),
        tensor(wAligned, ElemType.FLOAT, ["d_out", "d_in"]),
        tensor(loraA, ElemType.FLOAT, ["r", "d_in"]),
        tensor(loraB, ElemType.FLOAT, ["d_out", "r"]),
      ],
      output: [
        tensor(out.projectedB, ElemType.FLOAT, ["d_out", "r"]),
        tensor(out.vNormSq, ElemType.FLOAT, []),
        tensor(out.wBaseNormSq, ElemType.FLOAT, []),
        tensor(out.dot, ElemType.DOUBLE, []),
        tensor(out.updateNormSq, ElemType.DOUBLE, []),
        tensor(out.projectedUpdateNormSq, ElemType.DOUBLE, []),
        tensor(out.bNormSq, ElemType.DOUBLE, []),
        tensor(out.projectedBNormSq, ElemType.DOUBLE, []),
      ],
    },
  });
}
