import { describe, expect, it } from "vitest";
import type { SubspaceOperator } from "../../src/projection/operator.js";
import {
  chooseRank,
  randomizedSvd,
  seededGaussian,
  sketchWidth,
  subspaceProjection,
  symmetricEigen,
} from "../../src/projection/subspace-operator.js";
import { exactSvd, maxAbsDifference, projector, squareProduct, withSpectrum } from "./subspace-reference.js";

const rank = (k: number): SubspaceOperator => ({ kind: "subspace", rank: k });
const energy = (e: number): SubspaceOperator => ({ kind: "subspace", energy: e });

function gaussianMatrix(rows: number, cols: number, seed: number): Float64Array {
  return Float64Array.from({ length: rows * cols }, seededGaussian(seed));
}

/** ‖UᵀU − I‖_max for U [rows, count], using its first k columns. */
function orthonormalityError(u: Float64Array, rows: number, count: number, k: number): number {
  let max = 0;
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) {
      let dot = 0;
      for (let i = 0; i < rows; i++) dot += u[i * count + a]! * u[i * count + b]!;
      max = Math.max(max, Math.abs(dot - (a === b ? 1 : 0)));
    }
  }
  return max;
}

describe("randomizedSvd on random data", () => {
  it.each([
    [64, 48, 4],
    [96, 192, 8],
    [200, 120, 16],
  ])("%i×%i, subspace:%i: U_k is orthonormal and P = U_k U_kᵀ is idempotent and symmetric", async (rows, cols, k) => {
    const v = gaussianMatrix(rows, cols, rows * 7 + cols);
    const subspace = await randomizedSvd({ rows, cols, data: v }, sketchWidth(rank(k), rows, cols), 13);
    const { rank: used } = chooseRank(rank(k), subspace);
    expect(used).toBe(k);
    const p = projector(subspace.u, rows, subspace.count, used);
    const idempotence = maxAbsDifference(squareProduct(p, p, rows), p);
    const orthonormality = orthonormalityError(subspace.u, rows, subspace.count, subspace.count);
    const pt = Float64Array.from({ length: rows * rows }, (_, index) => p[(index % rows) * rows + Math.floor(index / rows)]!);
    console.log(`random ${rows}×${cols} subspace:${k}: ‖P² − P‖_max = ${idempotence.toExponential(2)}, ‖UᵀU − I‖_max = ${orthonormality.toExponential(2)}`);
    expect(idempotence).toBeLessThan(1e-12);
    expect(orthonormality).toBeLessThan(1e-12);
    expect(maxAbsDifference(p, pt)).toBeLessThan(1e-14);
  });

  it("is reproducible: the same seed gives the same U and σ bit for bit, another seed a different sketch", async () => {
    const v = { rows: 50, cols: 40, data: gaussianMatrix(50, 40, 3) };
    const first = await randomizedSvd(v, 14, 13);
    const again = await randomizedSvd(v, 14, 13);
    const other = await randomizedSvd(v, 14, 14);
    expect(again.u).toEqual(first.u);
    expect(again.sigma).toEqual(first.sigma);
    expect(other.u).not.toEqual(first.u);
  });

  it("P keeps the norm of what lies in its range and removes what is orthogonal to it", async () => {
    const rows = 30;
    const subspace = await randomizedSvd({ rows, cols: 20, data: gaussianMatrix(rows, 20, 5) }, 8, 13);
    const k = 3;
    // B = U_k c + w, w ⟂ U: P·B must be exactly U_k c.
    const inRange = new Float64Array(rows);
    for (let i = 0; i < rows; i++) inRange[i] = 2 * subspace.u[i * subspace.count]! - subspace.u[i * subspace.count + 2]!;
    const loraB = Float32Array.from(inRange);
    const loraA = Float32Array.of(1);
    const kept = subspaceProjection(subspace, k, { dOut: rows, dIn: 1, rank: 1, loraA, loraB });
    expect(maxAbsDifference(kept.projectedB, loraB)).toBeLessThan(1e-6);
    const outside = Float32Array.from(inRange.map((_, i) => subspace.u[i * subspace.count + 5]!));
    const removed = subspaceProjection(subspace, k, { dOut: rows, dIn: 1, rank: 1, loraA, loraB: outside });
    expect(Math.sqrt(removed.projectedBNormSq)).toBeLessThan(1e-6);
  });
});

describe("randomizedSvd against an exact SVD (one-sided Jacobi)", () => {
  it.each([
    // [rows, cols, k, spectrum]: a gap after the k-th singular value.
    [12, 9, 4, [9, 7, 5, 4, 1, 0.8, 0.5, 0.3, 0.1]],
    [40, 30, 4, Array.from({ length: 30 }, (_, i) => (i < 4 ? 10 - i : 2 * 0.8 ** i))],
    [40, 30, 8, Array.from({ length: 30 }, (_, i) => 0.7 ** i)],
  ])("%i×%i at k = %i: σ and the subspace agree", async (rows, cols, k, spectrum) => {
    const data = withSpectrum(rows, cols, spectrum, rows + cols + k);
    const subspace = await randomizedSvd({ rows, cols, data }, sketchWidth(rank(k), rows, cols), 13);
    const exact = exactSvd(data, rows, cols);
    const sigmaError = maxAbsDifference(subspace.sigma.subarray(0, k), exact.sigma.subarray(0, k));
    const exactAgainstSpectrum = maxAbsDifference(exact.sigma.subarray(0, k), spectrum.slice(0, k));
    const projectorError = maxAbsDifference(projector(subspace.u, rows, subspace.count, k), projector(exact.u, rows, cols, k));
    console.log(
      `${rows}×${cols} k=${k}: max |σ − σ_exact| = ${sigmaError.toExponential(2)} (σ_exact vs the built spectrum ${exactAgainstSpectrum.toExponential(2)}), ` +
        `‖P − P_exact‖_max = ${projectorError.toExponential(2)}`,
    );
    expect(exactAgainstSpectrum).toBeLessThan(1e-10);
    expect(sigmaError).toBeLessThan(1e-6);
    expect(projectorError).toBeLessThan(1e-6);
  });

  it("a V of lower rank than the sketch: only its directions are computed, and k is capped to them", async () => {
    const data = withSpectrum(20, 15, [5, 3, 1], 9);
    const subspace = await randomizedSvd({ rows: 20, cols: 15, data }, sketchWidth(rank(8), 20, 15), 13);
    expect(subspace.count).toBe(3);
    expect(chooseRank(rank(8), subspace)).toMatchObject({ rank: 3, capped: true });
    expect(chooseRank(rank(8), subspace).capturedEnergy).toBeCloseTo(1, 12);
  });
});

describe("chooseRank by energy", () => {
  const spectrum = [4, 2, 1, 1, 0.5];
  const normSq = spectrum.reduce((sum, s) => sum + s * s, 0); // 22.25
  const subspace = { rows: 5, count: 5, u: new Float64Array(25), sigma: Float64Array.from(spectrum), normSq };

  it("is the smallest k whose σ² reach the share e of ‖V‖_F²", () => {
    expect(chooseRank(energy(0.5), subspace)).toEqual({ rank: 1, capturedEnergy: 16 / normSq, capped: false });
    expect(chooseRank(energy(0.85), subspace)).toEqual({ rank: 2, capturedEnergy: 20 / normSq, capped: false });
    expect(chooseRank(energy(0.9), subspace)).toEqual({ rank: 3, capturedEnergy: 21 / normSq, capped: false });
    expect(chooseRank(energy(0.95), subspace).rank).toBe(4);
  });

  it("is capped at the sketch's width when the computed σ do not reach e", () => {
    const truncated = { ...subspace, count: 2, sigma: subspace.sigma.subarray(0, 2) };
    expect(chooseRank(energy(0.95), truncated)).toEqual({ rank: 2, capturedEnergy: 20 / normSq, capped: true });
  });
});

describe("subspaceProjection", () => {
  it("gives P·B and the traces of the Gram route as dense P ΔW computes them", async () => {
    const [dOut, dIn, r, k] = [24, 16, 3, 5];
    const subspace = await randomizedSvd({ rows: dOut, cols: dIn, data: gaussianMatrix(dOut, dIn, 21) }, 15, 13);
    const loraA = Float32Array.from(gaussianMatrix(r, dIn, 22));
    const loraB = Float32Array.from(gaussianMatrix(dOut, r, 23));
    const result = subspaceProjection(subspace, k, { dOut, dIn, rank: r, loraA, loraB });
    const p = projector(subspace.u, dOut, subspace.count, k);
    const update = new Float64Array(dOut * dIn);
    for (let i = 0; i < dOut; i++) for (let j = 0; j < dIn; j++) for (let c = 0; c < r; c++) update[i * dIn + j] = update[i * dIn + j]! + loraB[i * r + c]! * loraA[c * dIn + j]!;
    const projectedUpdate = new Float64Array(dOut * dIn);
    for (let i = 0; i < dOut; i++) for (let l = 0; l < dOut; l++) for (let j = 0; j < dIn; j++) projectedUpdate[i * dIn + j] = projectedUpdate[i * dIn + j]! + p[i * dOut + l]! * update[l * dIn + j]!;
    const dot = projectedUpdate.reduce((sum, x, index) => sum + x * update[index]!, 0);
    const projectedNormSq = projectedUpdate.reduce((sum, x) => sum + x * x, 0);
    expect(result.dot / dot).toBeCloseTo(1, 6);
    expect(result.projectedUpdateNormSq / projectedNormSq).toBeCloseTo(1, 6);
    // P is a projection: ⟨PΔW, ΔW⟩ = ‖PΔW‖².
    expect(result.dot / result.projectedUpdateNormSq).toBeCloseTo(1, 6);
    const denseB = new Float64Array(dOut * r);
    for (let i = 0; i < dOut; i++) for (let l = 0; l < dOut; l++) for (let c = 0; c < r; c++) denseB[i * r + c] = denseB[i * r + c]! + p[i * dOut + l]! * loraB[l * r + c]!;
    expect(maxAbsDifference(result.projectedB, denseB)).toBeLessThan(1e-5);
  });
});

describe("symmetricEigen", () => {
  it("diagonalises a symmetric matrix: A W = W Λ, eigenvalues descending", () => {
    const n = 6;
    const g = gaussianMatrix(n, n, 31);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = g[i * n + j]! + g[j * n + i]!;
    const { values, vectors } = symmetricEigen(a, n);
    const aw = squareProduct(a, vectors, n);
    const wl = vectors.map((x, index) => x * values[index % n]!);
    expect(maxAbsDifference(aw, wl)).toBeLessThan(1e-12);
    for (let i = 1; i < n; i++) expect(values[i]!).toBeLessThanOrEqual(values[i - 1]!);
  });
});
