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

/**
 * Whole buffers handed to the projection thread and back, for the pipelined reads: a read takes one, the thread
 * returns it with its result, and a later read of the same size reuses it. Every view it gives covers its whole
 * buffer, so the buffer can be moved to the thread as it is (a run's modules come in a few sizes, so exact sizes
 * are reused). At most `keep` idle buffers are kept, the most recent.
 */
export class BufferPool {
  private idle: ArrayBuffer[] = [];

  constructor(private readonly keep = 8) {}

  /** A view of `byteLength` bytes over a buffer of its own. */
  bytes(byteLength: number): Uint8Array {
    return new Uint8Array(this.buffer(byteLength));
  }

  /** A view of `count` fp32 values over a buffer of its own. */
  floats(count: number): Float32Array {
    return new Float32Array(this.buffer(count * 4));
  }

  /** Takes back a buffer (one moved away, and so detached, is ignored). */
  give(buffer: ArrayBuffer): void {
    if (buffer.byteLength === 0 || this.idle.includes(buffer)) return;
    this.idle.push(buffer);
    if (this.idle.length > this.keep) this.idle.shift();
  }

  private buffer(byteLength: number): ArrayBuffer {
    const index = this.idle.findIndex((buffer) => buffer.byteLength === byteLength);
    return index === -1 ? new ArrayBuffer(byteLength) : this.idle.splice(index, 1)[0]!;
  }
}
