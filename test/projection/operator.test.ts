import { describe, expect, it } from "vitest";
import { DEFAULT_OPERATOR, formatOperator, MAX_SUBSPACE_RANK, operatorFormula, parseOperator } from "../../src/projection/operator.js";

describe("parseOperator", () => {
  it.each([
    ["paper", { kind: "paper" }],
    [" Paper ", { kind: "paper" }],
    ["subspace:8", { kind: "subspace", rank: 8 }],
    ["subspace=1", { kind: "subspace", rank: 1 }],
    ["subspace:0.9", { kind: "subspace", energy: 0.9 }],
    ["SUBSPACE: 0.25", { kind: "subspace", energy: 0.25 }],
  ])("reads %j", (text, expected) => {
    expect(parseOperator(text)).toEqual(expected);
  });

  it.each(["subspace:0", "subspace:1.0", "subspace:-3", "subspace:abc", "subspace:", "subspace:1e9", "projector", "subspace"])("refuses %j as usage, naming the syntax", (text) => {
    expect(() => parseOperator(text)).toThrow(expect.objectContaining({ code: "usage", message: expect.stringMatching(/subspace:8|subspace:0\.9/) }));
  });

  it("keeps k within what a worker computes in seconds: subspace:256 is read, subspace:257 refused with the cap", () => {
    expect(parseOperator("subspace:256")).toEqual({ kind: "subspace", rank: MAX_SUBSPACE_RANK });
    expect(() => parseOperator("subspace:257")).toThrow(expect.objectContaining({ code: "usage", message: expect.stringContaining("from 1 to 256") }));
  });

  it("formats what it reads back to the same operator", () => {
    for (const text of ["paper", "subspace:8", "subspace:0.9"]) expect(formatOperator(parseOperator(text))).toBe(text);
  });
});

describe("operatorFormula", () => {
  it("names the paper's C by default and the projector with its k rule for subspace", () => {
    expect(operatorFormula(DEFAULT_OPERATOR)).toBe("C = V Vᵀ / ‖V‖_F with V = W_aligned − W_base (fp32); lora_B ← C·lora_B");
    expect(operatorFormula({ kind: "subspace", rank: 4 })).toMatch(/^P = U_k U_kᵀ.*k = 4; lora_B ← P·lora_B$/);
    expect(operatorFormula({ kind: "subspace", energy: 0.9 })).toMatch(/Σ_\{i≤k\} σᵢ² ≥ 0\.9·‖V‖_F²/);
  });
});
