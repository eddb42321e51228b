import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ProjectionSession, type ModuleProjection, type ModuleTensors } from "../../src/projection/projection-session.js";
import { float64Products, randomizedSvd, seededGaussian, seededUniform } from "../../src/projection/subspace-operator.js";
import { cudaProviderInstalled } from "../helpers/onnxruntime.js";

/** Deterministic pseudo-random numbers in [-0.5, 0.5) (the sketch's mulberry32), so failures reproduce. */
function random(seed: number): () => number {
  const uniform = seededUniform(seed);
  return () => uniform() - 0.5;
}

function matrix(rows: number, cols: number, next: () => number): Float32Array {
  return Float32Array.from({ length: rows * cols }, next);
}

/** The reference recipe in fp64, forming C = V Vᵀ / ‖V‖_F explicitly, as the official code does. */
function reference(m: ModuleTensors) {
  const { dOut, dIn, rank } = m;
  const v = Float64Array.from({ length: dOut * dIn }, (_, i) => m.wAligned[i]! - m.wBase[i]!);
  const vNorm = Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
  const c = new Float64Array(dOut * dOut);
  for (let i = 0; i < dOut; i++)
    for (let j = 0; j < dOut; j++) {
      let sum = 0;
      for (let k = 0; k < dIn; k++) sum += v[i * dIn + k]! * v[j * dIn + k]!;
      c[i * dOut + j] = sum / vNorm;
    }
  const cb = new Float64Array(dOut * rank);
  for (let i = 0; i < dOut; i++)
    for (let j = 0; j < rank; j++) {
      let sum = 0;
      for (let k = 0; k < dOut; k++) sum += c[i * dOut + k]! * m.loraB[k * rank + j]!;
      cb[i * rank + j] = sum;
    }
  const product = (b: ArrayLike<number>) => {
    const out = new Float64Array(dOut * dIn);
    for (let i = 0; i < dOut; i++)
      for (let j = 0; j < dIn; j++) {
        let sum = 0;
        for (let k = 0; k < rank; k++) sum += b[i * rank + k]! * m.loraA[k * dIn + j]!;
        out[i * dIn + j] = sum;
      }
    return out;
  };
  const dw = product(m.loraB);
  const cdw = product(cb);
  let dot = 0, n1 = 0, n2 = 0;
  for (let i = 0; i < dw.length; i++) {
    dot += dw[i]! * cdw[i]!;
    n1 += dw[i]! * dw[i]!;
    n2 += cdw[i]! * cdw[i]!;
  }
  return { cb, cosine: dot / Math.sqrt(n1 * n2) };
}

function module(dOut: number, dIn: number, rank: number, seed: number): ModuleTensors {
  const next = random(seed);
  const wBase = matrix(dOut, dIn, next);
  // The aligned weights: the base plus a low-rank-ish, structured difference, as fine-tuning leaves.
  const wAligned = wBase.map((x, i) => x + 0.05 * Math.sin(i * 0.37) + 0.01 * next());
  return { name: `m${seed}`, dOut, dIn, rank, wBase, wAligned, loraA: matrix(rank, dIn, next), loraB: matrix(dOut, rank, next) };
}

let session: ProjectionSession;
beforeAll(async () => {
  session = await ProjectionSession.create("cpu");
});
afterAll(() => session.release());

describe("ProjectionSession (ONNX graph, low-rank form)", () => {
  it.each([
    [16, 16, 4],
    [8, 24, 2],
    [40, 12, 8],
    [33, 17, 1],
  ])("matches the explicit d×d reference for d_out=%i, d_in=%i, r=%i", async (dOut, dIn, rank) => {
    const input = module(dOut, dIn, rank, dOut * 1000 + dIn);
    const result = await session.project(input);
    const expected = reference(input);
    const scale = Math.max(...expected.cb.map(Math.abs));
    const error = Math.max(...Array.from(expected.cb, (x, i) => Math.abs(x - result.projectedB[i]!)));
    expect(error / scale).toBeLessThan(1e-5);
    const cosine = result.dot / Math.sqrt(result.updateNormSq * result.projectedUpdateNormSq);
    expect(Math.abs(cosine - expected.cosine)).toBeLessThan(1e-6);
  });

  it("reports a zero update (lora_B = 0, PEFT's initialisation) through its norm", async () => {
    const input = { ...module(12, 10, 2, 7), loraB: new Float32Array(12 * 2) };
    const result = await session.project(input);
    expect(result.updateNormSq).toBe(0);
  });

  it("reports identical base and aligned weights through ‖V‖", async () => {
    const input = module(12, 10, 2, 8);
    const result = await session.project({ ...input, wAligned: input.wBase });
    expect(result.vNormSq).toBe(0);
  });

  it("refuses non-finite weights with the module's name", async () => {
    const input = module(12, 10, 2, 9);
    input.wAligned[5] = Number.NaN;
    await expect(session.project(input)).rejects.toThrow(/m9.*NaN/);
  });
});

const bytesOf = (values: Float32Array) => Buffer.from(values.buffer, values.byteOffset, values.byteLength);
/** Figures and C·B compared bit for bit (toEqual would let -0 and 0, or a float's last bit, pass as close). */
function expectSameProjection(actual: ModuleProjection, expected: ModuleProjection): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const key of Object.keys(expected) as Array<keyof ModuleProjection>) {
    if (key === "projectedB") expect(bytesOf(actual.projectedB).equals(bytesOf(expected.projectedB))).toBe(true);
    else expect(Object.is(actual[key], expected[key]), key).toBe(true);
  }
}

describe("a module whose V is kept (disk cache, warm pairs)", () => {
  const input = module(40, 24, 4, 11);

  it("is one run of one graph, not the alignment and the projection one after the other", async () => {
    await session.projectKeepingAlignment(input); // the session is made on first use: not counted
    // onnxruntime types InferenceSession as a factory; at run time it is the class every session is made of.
    const runs = vi.spyOn((ort.InferenceSession as unknown as { prototype: ort.InferenceSession }).prototype, "run");
    try {
      await session.projectKeepingAlignment(input);
      expect(runs).toHaveBeenCalledTimes(1);
    } finally {
      runs.mockRestore();
    }
  });

  it("has the fused graph's figures bit for bit, and V = W_aligned − W_base in fp32", async () => {
    const { projection, alignment } = await session.projectKeepingAlignment(input);
    expectSameProjection(projection, await session.project(input));
    const v = Float32Array.from(input.wAligned, (x, i) => x - input.wBase[i]!);
    expect(bytesOf(alignment.v).equals(bytesOf(v))).toBe(true);
    expect(alignment.wBaseNormSq).toBe(projection.wBaseNormSq);
    expect(alignment.wAlignedNormSq).toBe(projection.wAlignedNormSq);
  });

  it("projected again from that V (a cache or warm hit) gives the same figures, and a projection without V in it", async () => {
    const { projection, alignment } = await session.projectKeepingAlignment(input);
    const again = await session.projectWith(alignment, input);
    expectSameProjection(again, projection);
    // What the projection thread sends to the main thread: V in it would be copied there with every module.
    expect(Object.values(again).filter((value) => ArrayBuffer.isView(value))).toEqual([again.projectedB]);
  });
});


describe("the subspace operator's sketch products (alignmentProducts)", () => {
  it("are V·X and Vᵀ·X to fp32 rounding, and give the SVD that Float64 products give", async () => {
    const [dOut, dIn, width] = [48, 40, 7];
    const gaussian = seededGaussian(77);
    const v = Float32Array.from({ length: dOut * dIn }, gaussian);
    const exact = float64Products({ rows: dOut, cols: dIn, data: v });
    const onnx = session.alignmentProducts(v, dOut, dIn);
    const x = Float64Array.from({ length: dIn * width }, gaussian);
    const y = Float64Array.from({ length: dOut * width }, gaussian);
    const relative = (a: Float64Array, b: Float64Array) => Math.max(...a.map((value, i) => Math.abs(value - b[i]!))) / Math.max(...b.map(Math.abs));
    expect(relative(await onnx.times(x, width), await exact.times(x, width))).toBeLessThan(1e-5);
    expect(relative(await onnx.transposedTimes(y, width), await exact.transposedTimes(y, width))).toBeLessThan(1e-5);
    const m = { rows: dOut, cols: dIn, data: v };
    const [fromOnnx, fromFloat64] = [await randomizedSvd(m, 10, 13, onnx), await randomizedSvd(m, 10, 13)];
    expect(relative(fromOnnx.sigma.subarray(0, 3), fromFloat64.sigma.subarray(0, 3))).toBeLessThan(1e-5);
  });
});

describe("ProjectionSession.create", () => {
  it.skipIf(cudaProviderInstalled)("fails clearly when the execution provider is not available", async () => {
    await expect(ProjectionSession.create("cuda")).rejects.toThrow(/execution provider "cuda" is not available.*--ep cpu/);
  });
});
