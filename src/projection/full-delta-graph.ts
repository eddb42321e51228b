import { AttributeType, ElemType, encodeModel, type OnnxAttribute, type OnnxNode, type OnnxValueInfo } from "./onnx-proto.js";

/** Graph input and output names; the session feeds and reads them by these. */
export const FullDeltaInput = { wBase: "w_base", wAligned: "w_aligned", wFinetuned: "w_finetuned" } as const;
export const FullDeltaOutput = {
  /** W_aligned + C ΔW, fp32 [d_out, d_in]: the module's weight in the variant, when it is projected. */
  variant: "w_variant",
  /** ‖V‖_F² with V = W_aligned − W_base, fp32; zero means the pair does not differ in this module. */
  vNormSq: "v_norm_sq",
  /** ‖W_base‖_F², ‖W_aligned‖_F², ‖W_finetuned‖_F², fp32: how alike the three models are here. */
  wBaseNormSq: "w_base_norm_sq",
  wAlignedNormSq: "w_aligned_norm_sq",
  wFinetunedNormSq: "w_finetuned_norm_sq",
  /** ⟨CΔW, ΔW⟩_F with ΔW = W_finetuned − W_aligned, fp64. */
  dot: "dot",
  /** ‖ΔW‖_F², fp64; zero means the fine-tune left this module as the aligned model has it. */
  updateNormSq: "update_norm_sq",
  /** ‖CΔW‖_F², fp64. */
  projectedUpdateNormSq: "projected_update_norm_sq",
} as const;

/**
 * Which product C ΔW = V Vᵀ ΔW / ‖V‖_F forms first. Both cost d_out·d_in·min(d_out, d_in) multiply-adds when the
 * smaller side is chosen, and hold a min(d_out, d_in)² intermediate: `update-first` forms Vᵀ ΔW ([d_in, d_in]),
 * the paper's V (Vᵀ ΔW), for d_in ≤ d_out (q/o, gate/up); `alignment-first` forms V Vᵀ ([d_out, d_out]) for
 * d_out < d_in (k/v with grouped-query attention, down_proj), where Vᵀ ΔW would be the larger square.
 */
export type ProductOrder = "update-first" | "alignment-first";

export function productOrder(dOut: number, dIn: number): ProductOrder {
  return dIn <= dOut ? "update-first" : "alignment-first";
}

const OPSET = 17;
const IR_VERSION = 8;
const out = FullDeltaOutput;
const int = (name: string, i: number): OnnxAttribute => ({ name, type: AttributeType.INT, i });
const op = (opType: string, input: string[], output: string, attribute: OnnxAttribute[] = []): OnnxNode => ({ opType, input, output: [output], name: output, attribute });
const value = (name: string, elemType: number, dim: OnnxValueInfo["type"]["tensorType"]["shape"]["dim"]): OnnxValueInfo => ({ name, type: { tensorType: { elemType, shape: { dim } } } });
const matrix = (name: string) => value(name, ElemType.FLOAT, [{ dimParam: "d_out" }, { dimParam: "d_in" }]);
const noKeepdims = [int("keepdims", 0)];

/** C ΔW · ‖V‖_F, i.e. V Vᵀ ΔW, in the given order; large products in fp32, as the LoRA graph's. */
function productNodes(order: ProductOrder): OnnxNode[] {
  if (order === "update-first") return [op("Gemm", ["v", "delta"], "vt_delta", [int("transA", 1)]), op("MatMul", ["v", "vt_delta"], "v_vt_delta")];
  return [op("Gemm", ["v", "v"], "v_vt", [int("transB", 1)]), op("MatMul", ["v_vt", "delta"], "v_vt_delta")];
}

/**
 * Safe LoRA on one module of a full fine-tune: from the three weights, ΔW = W_finetuned − W_aligned,
 * V = W_aligned − W_base, C ΔW = V Vᵀ ΔW / ‖V‖_F (the smaller square first: see ProductOrder), W_aligned + C ΔW, the norms
 * that tell whether the three are one family, and the cosine's inner products over fp64 copies of ΔW and C ΔW.
 * Shapes are symbolic: one model per order serves every module.
 */
export function buildFullDeltaModel(order: ProductOrder): Uint8Array {
  const { wBase, wAligned, wFinetuned } = FullDeltaInput;
  const nodes: OnnxNode[] = [
    op("Sub", [wFinetuned, wAligned], "delta"),
    op("Sub", [wAligned, wBase], "v"),
    op("ReduceSumSquare", ["v"], out.vNormSq, noKeepdims),
    op("ReduceSumSquare", [wBase], out.wBaseNormSq, noKeepdims),
    op("ReduceSumSquare", [wAligned], out.wAlignedNormSq, noKeepdims),
    op("ReduceSumSquare", [wFinetuned], out.wFinetunedNormSq, noKeepdims),
    op("Sqrt", [out.vNormSq], "v_norm"),
    ...productNodes(order),
    op("Div", ["v_vt_delta", "v_norm"], "c_delta"),
    op("Add", [wAligned, "c_delta"], out.variant),
    op("Cast", ["delta"], "delta64", [int("to", ElemType.DOUBLE)]),
    op("Cast", ["c_delta"], "c_delta64", [int("to", ElemType.DOUBLE)]),
    op("Mul", ["c_delta64", "delta64"], "dot_terms"),
    op("ReduceSum", ["dot_terms"], out.dot, noKeepdims),
    op("ReduceSumSquare", ["delta64"], out.updateNormSq, noKeepdims),
    op("ReduceSumSquare", ["c_delta64"], out.projectedUpdateNormSq, noKeepdims),
  ];
  const scalar = (name: string, elemType: number) => value(name, elemType, []);
  return encodeModel({
    irVersion: IR_VERSION,
    producerName: "safe-lora",
    producerVersion: "1",
    docString: `Safe LoRA for one module of a full fine-tune (${order})`,
    opsetImport: [{ domain: "", version: OPSET }],
    graph: {
      name: `safe_lora_full_module_${order.replace("-", "_")}`,
      node: nodes,
      input: [matrix(wBase), matrix(wAligned), matrix(wFinetuned)],
      output: [
        matrix(out.variant),
        ...[out.vNormSq, out.wBaseNormSq, out.wAlignedNormSq, out.wFinetunedNormSq].map((name) => scalar(name, ElemType.FLOAT)),
        ...[out.dot, out.updateNormSq, out.projectedUpdateNormSq].map((name) => scalar(name, ElemType.DOUBLE)),
      ],
    },
  });
}
