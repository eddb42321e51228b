import { DTYPE_BYTES, decodeToFloat32, type Dtype } from "./dtype.js";

/**
 * A reusable decode buffer for one role (base or aligned weights) in the projection thread. Every module of a run
 * reuses it, so memory stays at the size of the largest module however many modules there are.
 */
export class ScratchBuffer {
  private values = new Float32Array(0);

  /** Decodes bytes to fp32 in this buffer's value store. */
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
