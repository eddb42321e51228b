import { DTYPE_BYTES, decodeToFloat32, type Dtype } from "./dtype.js";

/**
 * Reusable read and decode buffers for one role (base or aligned weights). Every module of a run reuses
 * them, so memory stays at the size of the largest module however many modules there are.
 */
export class ScratchBuffer {
  private raw = new Uint8Array(0);
  private values = new Float32Array(0);

  /** A byte buffer to read `byteLength` bytes into. */
  bytes(byteLength: number): Uint8Array {
    if (this.raw.byteLength < byteLength) this.raw = new Uint8Array(byteLength);
    return this.raw.subarray(0, byteLength);
  }

  /** A float buffer of at least `count` values (for V read straight from the cache). */
  floats(count: number): Float32Array {
    if (this.values.length < count) this.values = new Float32Array(count);
    return this.values;
  }

  /** Decodes bytes (from `bytes()` or elsewhere) to fp32 in this buffer's value store. */
  decode(bytes: Uint8Array, dtype: Dtype): Float32Array {
    const count = bytes.byteLength / DTYPE_BYTES[dtype];
    if (this.values.length < count) this.values = new Float32Array(count);
    return decodeToFloat32(bytes, dtype, this.values);
  }
}
