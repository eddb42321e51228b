import type { SubspaceOperator } from "./operator.js";

/**
 * The subspace operator's math: V's leading left singular vectors by a randomised SVD (Halko, Martinsson & Tropp
 * 2011, algorithms 4.4 and 5.1), and the orthogonal projector P = U_k U_kᵀ applied to `lora_B` in its low-rank
 * form (P is d_out × d_out and never formed). The sketch is seeded, so the same V gives the same U_k in every run;
 * the products with V are pluggable (AlignmentProducts): in Float64 here, or in onnxruntime in the projection thread,
 * where TS took 8.4 s for one 4096 × 4096 V at subspace:8 against 98 ms for the paper's whole graph.
 */

/** Extra sketch columns beyond k: they make the top k singular directions accurate (HMT §4.2). */
export const OVERSAMPLING = 10;
/** Power iterations (HMT algorithm 4.4), each re-orthonormalised: enough for a spectrum that decays slowly. */
export const POWER_ITERATIONS = 2;
/** For `subspace:<e>`, the sketch's width: k can be at most this (or V's smaller side), the energy cap. */
export const ENERGY_SKETCH_COLUMNS = 64;

/**
 * The seed of the Gaussian sketch. Fixed, so that a run is reproducible: the same V and operator give the same
 * U_k, bit for bit, in every run on the same execution provider (the sketch is drawn here, not by a device; the
 * fp32 products with V may round differently on another provider).
 */
export const SUBSPACE_SEED = 13;

/** Deterministic uniform numbers in [0, 1) (mulberry32): the sketch must be reproducible. */
export function seededUniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Deterministic standard normal numbers (Box–Muller over seededUniform). */
export function seededGaussian(seed: number): () => number {
  const uniform = seededUniform(seed);
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const value = spare;
      spare = null;
      return value;
    }
    const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
    const angle = 2 * Math.PI * uniform();
    spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  };
}

/** A dense row-major matrix. */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array | Float32Array;
}

/**
 * What identifies a computed subspace of one V: the sketch's width and seed (and the fixed power iterations). An
 * energy share and a k that need the same width share it; the warm pairs keep it beside V under this tag.
 */
export function subspaceTag(width: number): string {
  return `sketch=${width};seed=${SUBSPACE_SEED};power=${POWER_ITERATIONS}`;
}

/** V's leading singular triplets as far as the sketch reached: U [rows, count] row-major, σ descending. */
export interface Subspace {
  readonly rows: number;
  /** How many singular directions were computed (the sketch's width, less any V does not have). */
  readonly count: number;
  /** [rows, count], row-major, orthonormal columns. */
  readonly u: Float64Array;
  /** count singular values, descending. */
  readonly sigma: Float64Array;
  /** ‖V‖_F², exact (not from σ): the denominator of the captured energy. */
  readonly normSq: number;
}

/** C = A B for A [m, n], B [n, p]. */
function multiply(a: Matrix, b: Matrix): Float64Array {
  const { rows: m, cols: n } = a;
  const p = b.cols;
  const out = new Float64Array(m * p);
  for (let i = 0; i < m; i++) {
    const row = i * p;
    for (let l = 0; l < n; l++) {
      const scale = a.data[i * n + l]!;
      if (scale === 0) continue;
      const from = l * p;
      for (let j = 0; j < p; j++) out[row + j] = out[row + j]! + scale * b.data[from + j]!;
    }
  }
  return out;
}

/** C = Aᵀ B for A [m, n], B [m, p]. */
function multiplyTransposed(a: Matrix, b: Matrix): Float64Array {
  const { rows: m, cols: n } = a;
  const p = b.cols;
  const out = new Float64Array(n * p);
  for (let l = 0; l < m; l++) {
    const from = l * p;
    for (let i = 0; i < n; i++) {
      const scale = a.data[l * n + i]!;
      if (scale === 0) continue;
      const row = i * p;
      for (let j = 0; j < p; j++) out[row + j] = out[row + j]! + scale * b.data[from + j]!;
    }
  }
  return out;
}

/**
 * Orthonormalises the columns of Y [rows, cols] by modified Gram–Schmidt, twice ("twice is enough": the second
 * pass restores orthogonality lost to cancellation). A column that falls to rounding noise is dependent on those
 * before it (V has lower rank than the sketch) and is dropped. Returns Q [rows, kept].
 */
export function orthonormalColumns(y: Float64Array, rows: number, cols: number): { q: Float64Array; cols: number } {
  const columns: Float64Array[] = [];
  for (let j = 0; j < cols; j++) {
    const column = new Float64Array(rows);
    for (let i = 0; i < rows; i++) column[i] = y[i * cols + j]!;
    let original = 0;
    for (let i = 0; i < rows; i++) original += column[i]! * column[i]!;
    for (let pass = 0; pass < 2; pass++) {
      for (const basis of columns) {
        let dot = 0;
        for (let i = 0; i < rows; i++) dot += basis[i]! * column[i]!;
        for (let i = 0; i < rows; i++) column[i] = column[i]! - dot * basis[i]!;
      }
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += column[i]! * column[i]!;
    if (original === 0 || norm <= original * 1e-24) continue;
    const inverse = 1 / Math.sqrt(norm);
    for (let i = 0; i < rows; i++) column[i] = column[i]! * inverse;
    columns.push(column);
  }
  const kept = columns.length;
  const q = new Float64Array(rows * kept);
  columns.forEach((column, j) => {
    for (let i = 0; i < rows; i++) q[i * kept + j] = column[i]!;
  });
  return { q, cols: kept };
}

/**
 * Eigen decomposition of a symmetric n × n matrix by cyclic Jacobi rotations (Float64), sorted by eigenvalue,
 * descending. Returns the eigenvalues and the eigenvectors as the columns of an n × n row-major matrix. For the
 * sketch's small matrices (n ≤ k + OVERSAMPLING) it is exact to rounding and needs no library.
 */
export function symmetricEigen(matrix: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const vectors = new Float64Array(n * n);
  for (let i = 0; i < n; i++) vectors[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diagonal = 0;
    for (let i = 0; i < n; i++) {
      diagonal += a[i * n + i]! * a[i * n + i]!;
      for (let j = i + 1; j < n; j++) off += a[i * n + j]! * a[i * n + j]!;
    }
    if (off <= 1e-30 * diagonal || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (apq === 0) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // A ← Jᵀ A J on rows and columns p, q.
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = vectors[k * n + p]!;
          const vkq = vectors[k * n + q]!;
          vectors[k * n + p] = c * vkp - s * vkq;
          vectors[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[y * n + y]! - a[x * n + x]!);
  const values = Float64Array.from(order, (i) => a[i * n + i]!);
  const sorted = new Float64Array(n * n);
  for (let k = 0; k < n; k++) order.forEach((from, to) => (sorted[k * n + to] = vectors[k * n + from]!));
  return { values, vectors: sorted };
}

/** How many sketch columns an operator needs on a V of this shape. */
export function sketchWidth(operator: SubspaceOperator, rows: number, cols: number): number {
  const wanted = "rank" in operator ? operator.rank + OVERSAMPLING : ENERGY_SKETCH_COLUMNS;
  return Math.min(wanted, rows, cols);
}

/**
 * The sketch's large products with V [rows, cols]: V·X for X [cols, width] and Vᵀ·X for X [rows, width]. They are
 * all of the SVD's work that grows with V (six passes over it with two power iterations); the rest is small.
 */
export interface AlignmentProducts {
  times(x: Float64Array, width: number): Promise<Float64Array>;
  transposedTimes(x: Float64Array, width: number): Promise<Float64Array>;
}

/** The products in Float64 in TS: exact to rounding, for tests and small matrices (the projection thread uses onnxruntime's). */
export function float64Products(v: Matrix): AlignmentProducts {
  return {
    times: async (x, width) => multiply(v, { rows: v.cols, cols: width, data: x }),
    transposedTimes: async (x, width) => multiplyTransposed(v, { rows: v.rows, cols: width, data: x }),
  };
}

/**
 * V's leading `width` singular triplets by a randomised SVD: Y = V Ω with a seeded Gaussian Ω [cols, width], then
 * POWER_ITERATIONS rounds of Q ← orth(V orth(Vᵀ Q)); B = Qᵀ V; B Bᵀ = W Λ Wᵀ by Jacobi; U = Q W, σ = √λ. The
 * products with V run in `products`; orthonormalisation and the small eigenproblem in Float64 here.
 */
export async function randomizedSvd(v: Matrix, width: number, seed: number, products: AlignmentProducts = float64Products(v)): Promise<Subspace> {
  const { rows, cols } = v;
  let normSq = 0;
  for (let i = 0; i < v.data.length; i++) normSq += v.data[i]! * v.data[i]!;
  const gaussian = seededGaussian(seed);
  const omega = Float64Array.from({ length: cols * width }, gaussian);
  let q = orthonormalColumns(await products.times(omega, width), rows, width);
  for (let iteration = 0; iteration < POWER_ITERATIONS; iteration++) {
    const z = orthonormalColumns(await products.transposedTimes(q.q, q.cols), cols, q.cols);
    q = orthonormalColumns(await products.times(z.q, z.cols), rows, z.cols);
  }
  const count = q.cols;
  // Bᵀ = Vᵀ Q [cols, count]; B Bᵀ = (Bᵀ)ᵀ Bᵀ [count, count].
  const bt: Matrix = { rows: cols, cols: count, data: await products.transposedTimes(q.q, count) };
  const { values, vectors } = symmetricEigen(multiplyTransposed(bt, bt), count);
  const u = multiply({ rows, cols: count, data: q.q }, { rows: count, cols: count, data: vectors });
  const sigma = values.map((value) => Math.sqrt(Math.max(0, value)));
  return { rows, count, u, sigma, normSq };
}

/** The k an operator takes from a subspace, the energy it captures, and whether the sketch's width capped it. */
export interface SubspaceRank {
  readonly rank: number;
  /** Σ_{i≤k} σᵢ² / ‖V‖_F². */
  readonly capturedEnergy: number;
  /** `subspace:<e>`: no k within the sketch reached e, so k is the sketch's width. `subspace:<k>`: V has fewer directions than k. */
  readonly capped: boolean;
}

export function chooseRank(operator: SubspaceOperator, subspace: Subspace): SubspaceRank {
  const energyAt = (k: number) => {
    let sum = 0;
    for (let i = 0; i < k; i++) sum += subspace.sigma[i]! * subspace.sigma[i]!;
    return subspace.normSq === 0 ? 0 : sum / subspace.normSq;
  };
  if ("rank" in operator) {
    const rank = Math.min(operator.rank, subspace.count);
    return { rank, capturedEnergy: energyAt(rank), capped: rank < operator.rank };
  }
  for (let k = 1; k <= subspace.count; k++) {
    const captured = energyAt(k);
    // A hair under e from rounding counts as e: σ² summed in another order must not change k.
    if (captured >= operator.energy - 1e-12) return { rank: k, capturedEnergy: captured, capped: false };
  }
  return { rank: subspace.count, capturedEnergy: energyAt(subspace.count), capped: true };
}

/** P·B = U_k (U_kᵀ B) for B [rows, r], in Float64. */
export function projectOntoSubspace(subspace: Subspace, rank: number, b: Matrix): Float64Array {
  const { rows, count, u } = subspace;
  const r = b.cols;
  const coefficients = new Float64Array(rank * r);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < rank; j++) {
      const uij = u[i * count + j]!;
      for (let c = 0; c < r; c++) coefficients[j * r + c] = coefficients[j * r + c]! + uij * b.data[i * r + c]!;
    }
  }
  const out = new Float64Array(rows * r);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < rank; j++) {
      const uij = u[i * count + j]!;
      for (let c = 0; c < r; c++) out[i * r + c] = out[i * r + c]! + uij * coefficients[j * r + c]!;
    }
  }
  return out;
}

/** What the subspace operator gives for one module: the same figures as the paper graph's, for P in place of C. */
export interface SubspaceProjection {
  /** P·B, fp32 [d_out, r]. */
  readonly projectedB: Float32Array;
  /** ⟨PΔW, ΔW⟩_F = tr((Bᵀ P B) A Aᵀ). */
  readonly dot: number;
  /** ‖PΔW‖_F² = tr((PB)ᵀ PB A Aᵀ). */
  readonly projectedUpdateNormSq: number;
  /** ‖PB‖_F². */
  readonly projectedBNormSq: number;
}

/** tr(G H) for r × r matrices, H symmetric: Σ G ⊙ H. */
function traceOfProduct(g: Float64Array, h: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < g.length; i++) sum += g[i]! * h[i]!;
  return sum;
}

/**
 * P·B and the cosine's traces by the paper graph's r × r Gram route (README, "How it works"), with P in place
 * of C: the traces are taken of the fp32 P·B that is written, as the graph takes them of its fp32 C·B.
 */
export function subspaceProjection(subspace: Subspace, rank: number, lora: { dOut: number; dIn: number; rank: number; loraA: Float32Array; loraB: Float32Array }): SubspaceProjection {
  const r = lora.rank;
  const b: Matrix = { rows: lora.dOut, cols: r, data: lora.loraB };
  const projectedB = Float32Array.from(projectOntoSubspace(subspace, rank, b));
  const pb: Matrix = { rows: lora.dOut, cols: r, data: projectedB };
  // H = A Aᵀ [r, r], symmetric: each pair of A's rows once.
  const { loraA, dIn } = lora;
  const h = new Float64Array(r * r);
  for (let i = 0; i < r; i++) {
    for (let j = i; j < r; j++) {
      let sum = 0;
      for (let c = 0; c < dIn; c++) sum += loraA[i * dIn + c]! * loraA[j * dIn + c]!;
      h[i * r + j] = sum;
      h[j * r + i] = sum;
    }
  }
  const gDot = multiplyTransposed(b, pb);
  const gProjected = multiplyTransposed(pb, pb);
  let projectedBNormSq = 0;
  for (let i = 0; i < projectedB.length; i++) projectedBNormSq += projectedB[i]! * projectedB[i]!;
  return { projectedB, dot: traceOfProduct(gDot, h), projectedUpdateNormSq: traceOfProduct(gProjected, h), projectedBNormSq };
}
