// Test-only references for the subspace operator: an exact SVD by one-sided Jacobi (Hestenes) in Float64 — a
// different algorithm from src's randomised sketch + two-sided Jacobi, so that agreement means something — and
// matrices with a known spectrum.
import { orthonormalColumns, seededGaussian } from "../../src/projection/subspace-operator.js";

/** The exact thin SVD of A [rows, cols] (rows ≥ cols): U [rows, cols] and σ descending, by one-sided Jacobi. */
export function exactSvd(a: Float64Array, rows: number, cols: number): { u: Float64Array; sigma: Float64Array } {
  const w = Float64Array.from(a);
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < cols - 1; p++) {
      for (let q = p + 1; q < cols; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < rows; i++) {
          const x = w[i * cols + p]!;
          const y = w[i * cols + q]!;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < rows; i++) {
          const x = w[i * cols + p]!;
          const y = w[i * cols + q]!;
          w[i * cols + p] = c * x - s * y;
          w[i * cols + q] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = Array.from({ length: cols }, (_, j) => {
    let sum = 0;
    for (let i = 0; i < rows; i++) sum += w[i * cols + j]! ** 2;
    return Math.sqrt(sum);
  });
  const order = norms.map((_, j) => j).sort((x, y) => norms[y]! - norms[x]!);
  const u = new Float64Array(rows * cols);
  order.forEach((from, to) => {
    for (let i = 0; i < rows; i++) u[i * cols + to] = norms[from]! === 0 ? 0 : w[i * cols + from]! / norms[from]!;
  });
  return { u, sigma: Float64Array.from(order, (j) => norms[j]!) };
}

/** A random matrix with orthonormal columns [rows, cols], seeded. */
export function randomOrthonormal(rows: number, cols: number, seed: number): Float64Array {
  const gaussian = seededGaussian(seed);
  const { q, cols: kept } = orthonormalColumns(Float64Array.from({ length: rows * cols }, gaussian), rows, cols);
  if (kept !== cols) throw new Error("a Gaussian matrix came out rank-deficient");
  return q;
}

/** Q1 diag(σ) Q2ᵀ [rows, cols] with random orthonormal Q1 [rows, n], Q2 [cols, n], n = σ's length. */
export function withSpectrum(rows: number, cols: number, sigma: readonly number[], seed: number): Float64Array {
  const n = sigma.length;
  const q1 = randomOrthonormal(rows, n, seed);
  const q2 = randomOrthonormal(cols, n, seed + 1);
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let sum = 0;
      for (let l = 0; l < n; l++) sum += q1[i * n + l]! * sigma[l]! * q2[j * n + l]!;
      out[i * cols + j] = sum;
    }
  }
  return out;
}

/** The dense projector U_k U_kᵀ [rows, rows] from the first k of U's `count` columns. */
export function projector(u: Float64Array, rows: number, count: number, k: number): Float64Array {
  const p = new Float64Array(rows * rows);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < rows; j++) {
      let sum = 0;
      for (let l = 0; l < k; l++) sum += u[i * count + l]! * u[j * count + l]!;
      p[i * rows + j] = sum;
    }
  }
  return p;
}

/** Largest absolute entry of A − B. */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** A B for square n × n matrices. */
export function squareProduct(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let l = 0; l < n; l++) for (let j = 0; j < n; j++) out[i * n + j] = out[i * n + j]! + a[i * n + l]! * b[l * n + j]!;
  return out;
}
