import { endianness } from "node:os";
import { SafeLoraError } from "../errors.js";

/** Bytes per element of every dtype the safetensors format defines with a whole-byte width. */
export const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type Dtype = keyof typeof DTYPE_BYTES;

/** The dtypes whose values this project can decode to fp32 and encode back. */
export const FLOAT_DTYPES = ["F32", "F16", "BF16", "F64"] as const;
export type FloatDtype = (typeof FLOAT_DTYPES)[number];

export function isDtype(value: string): value is Dtype {
  return Object.hasOwn(DTYPE_BYTES, value);
}

export function isFloatDtype(value: string): value is FloatDtype {
  return (FLOAT_DTYPES as readonly string[]).includes(value);
}

// safetensors stores little-endian; typed-array views use the host's order. Every platform Node ships
// prebuilt binaries for is little-endian, but say so plainly rather than return wrong numbers.
if (endianness() !== "LE") {
  throw new Error("safe-lora needs a little-endian host: safetensors data is little-endian");
}

/** fp16 bit pattern -> fp32 value, for all 65,536 patterns: decoding becomes one table load per element. */
const F16_TABLE: Float32Array = (() => {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) table[h] = sign * mantissa * 2 ** -24;
    else if (exponent === 31) table[h] = mantissa === 0 ? sign * Infinity : NaN;
    else table[h] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  return table;
})();

/** A typed-array view needs an aligned offset; bytes read at arbitrary offsets are copied once if not. */
function aligned(bytes: Uint8Array, alignment: number): Uint8Array {
  return bytes.byteOffset % alignment === 0 ? bytes : bytes.slice();
}

/**
 * bf16 is the upper half of an fp32: widen by shifting the bits into place. Into an Int32Array, where `h << 16`
 * is stored as it is (a Uint32Array would convert the negative ones first), and unrolled: this loop is most of
 * a patch's CPU time after the projection itself (1.3 ns a value here against 2–3 ns for the plain loop).
 */
function widenBf16(halves: Uint16Array, words: Int32Array): void {
  const count = halves.length;
  const unrolled = count - (count % 8);
  let i = 0;
  for (; i < unrolled; i += 8) {
    words[i] = halves[i]! << 16;
    words[i + 1] = halves[i + 1]! << 16;
    words[i + 2] = halves[i + 2]! << 16;
    words[i + 3] = halves[i + 3]! << 16;
    words[i + 4] = halves[i + 4]! << 16;
    words[i + 5] = halves[i + 5]! << 16;
    words[i + 6] = halves[i + 6]! << 16;
    words[i + 7] = halves[i + 7]! << 16;
  }
  for (; i < count; i++) words[i] = halves[i]! << 16;
}

/**
 * Decodes little-endian tensor bytes to fp32, into `out` when given (it must hold at least `count` values).
 * F64 is narrowed to the nearest fp32, as Safe LoRA forms its operator in fp32.
 */
export function decodeToFloat32(bytes: Uint8Array, dtype: Dtype, out?: Float32Array): Float32Array {
  if (!isFloatDtype(dtype)) {
    throw new SafeLoraError(
      `tensors of dtype ${dtype} cannot be decoded: Safe LoRA needs floating-point weights (F32, F16, BF16 or F64)`,
      "unsupported-dtype",
    );
  }
  const count = bytes.byteLength / DTYPE_BYTES[dtype];
  const target = out ? out.subarray(0, count) : new Float32Array(count);
  if (target.length !== count) throw new RangeError(`output holds ${target.length} values, need ${count}`);
  const src = aligned(bytes, DTYPE_BYTES[dtype]);
  switch (dtype) {
    case "F32":
      target.set(new Float32Array(src.buffer, src.byteOffset, count));
      break;
    case "F64":
      target.set(new Float64Array(src.buffer, src.byteOffset, count));
      break;
    case "BF16":
      widenBf16(new Uint16Array(src.buffer, src.byteOffset, count), new Int32Array(target.buffer, target.byteOffset, count));
      break;
    case "F16": {
      const halves = new Uint16Array(src.buffer, src.byteOffset, count);
      for (let i = 0; i < count; i++) target[i] = F16_TABLE[halves[i]!]!;
      break;
    }
  }
  return target;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** fp32 -> bf16 bits, rounding to nearest even as PyTorch does; NaN stays a quiet NaN. */
function float32ToBf16Bits(value: number): number {
  scratchF32[0] = value;
  const bits = scratchU32[0]!;
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x0040) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** fp32 -> fp16 bits, rounding to nearest even, with subnormals, overflow to infinity and NaN. */
function float32ToF16Bits(value: number): number {
  scratchF32[0] = value;
  const bits = scratchU32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mantissa & ((1 << shift) - 1);
    let result = mantissa >>> shift;
    if (rest > half || (rest === half && (result & 1) === 1)) result++;
    return sign | result;
  }
  const rest = mantissa & 0x1fff;
  let result = (e << 10) | (mantissa >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && (result & 1) === 1)) result++;
  return sign | result;
}

/** Encodes fp32 values as little-endian bytes of `dtype` (rounding to nearest even when narrowing). */
export function encodeFromFloat32(values: Float32Array, dtype: FloatDtype): Uint8Array {
  const bytes = new Uint8Array(values.length * DTYPE_BYTES[dtype]);
  switch (dtype) {
    case "F32":
      new Float32Array(bytes.buffer).set(values);
      break;
    case "F64":
      new Float64Array(bytes.buffer).set(values);
      break;
    case "BF16": {
      const halves = new Uint16Array(bytes.buffer);
      for (let i = 0; i < values.length; i++) halves[i] = float32ToBf16Bits(values[i]!);
      break;
    }
    case "F16": {
      const halves = new Uint16Array(bytes.buffer);
      for (let i = 0; i < values.length; i++) halves[i] = float32ToF16Bits(values[i]!);
      break;
    }
  }
  return bytes;
}
