import { describe, expect, it } from "vitest";
import { decodeToFloat32, encodeFromFloat32 } from "../../src/safetensors/dtype.js";

const bits16 = (bytes: Uint8Array) => Array.from(new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2));

describe("bf16", () => {
  it("decodes by widening the bits", () => {
    const bytes = new Uint8Array(new Uint16Array([0x3f80, 0xc000, 0x0000, 0x7f80]).buffer);
    expect(Array.from(decodeToFloat32(bytes, "BF16"))).toEqual([1, -2, 0, Infinity]);
  });

  it("encodes rounding to nearest even, like torch", () => {
    // 1 + 2^-8 is exactly halfway between bf16 1.0 and the next value: ties go to the even mantissa (1.0).
    // 1 + 3·2^-8 is halfway between two values whose upper is even: rounds up.
    const values = Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -0, Number.NaN]);
    expect(bits16(encodeFromFloat32(values, "BF16"))).toEqual([0x3f80, 0x3f82, 0x3f81, 0x8000, 0x7fc0]);
  });

  it("round-trips every bf16 value exactly", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const decoded = decodeToFloat32(new Uint8Array(all.buffer), "BF16");
    const encoded = bits16(encodeFromFloat32(decoded, "BF16"));
    const mismatches = encoded.filter((bits, i) => bits !== all[i] && !Number.isNaN(decoded[i]));
    expect(mismatches).toEqual([]);
  });
});

describe("f16", () => {
  it("decodes normals, subnormals, zero, infinity", () => {
    const bytes = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x0001, 0x8000, 0x7c00, 0x7bff]).buffer);
    expect(Array.from(decodeToFloat32(bytes, "F16"))).toEqual([1, -2, 2 ** -24, -0, Infinity, 65504]);
  });

  it("round-trips every f16 value exactly", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const decoded = decodeToFloat32(new Uint8Array(all.buffer), "F16");
    const encoded = bits16(encodeFromFloat32(decoded, "F16"));
    const mismatches = encoded.filter((bits, i) => bits !== all[i] && !Number.isNaN(decoded[i]));
    expect(mismatches).toEqual([]);
  });

  it("encodes with round-to-nearest-even, overflow to infinity and subnormal rounding", () => {
    const values = Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 70000, 2 ** -25, 3 * 2 ** -26]);
    expect(bits16(encodeFromFloat32(values, "F16"))).toEqual([0x3c00, 0x3c02, 0x7c00, 0x0000, 0x0001]);
  });
});

describe("F32 and F64", () => {
  it("decodes F64 to the nearest fp32 and F32 as is, also from unaligned bytes", () => {
    const f64 = new Uint8Array(new Float64Array([0.1, -3]).buffer);
    expect(Array.from(decodeToFloat32(f64, "F64"))).toEqual([Math.fround(0.1), -3]);
    const unaligned = new Uint8Array(9);
    unaligned.set(new Uint8Array(new Float32Array([1.5, 2.5]).buffer), 1);
    expect(Array.from(decodeToFloat32(unaligned.subarray(1), "F32"))).toEqual([1.5, 2.5]);
  });

  it("refuses integer dtypes", () => {
    expect(() => decodeToFloat32(new Uint8Array(4), "I32")).toThrow(/I32 cannot be decoded/);
  });
});
