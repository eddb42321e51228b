import { open } from "node:fs/promises";
import { DTYPE_BYTES, type Dtype } from "./dtype.js";
import { elementCount } from "./header.js";
import type { HeaderMetadata } from "./schema.js";

export interface TensorLayout {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
}

export interface TensorToWrite extends TensorLayout {
  readonly data: Uint8Array;
}

/**
 * The header exactly as the reference writer lays it out: compact JSON, `__metadata__` first, tensors in
 * data order with contiguous offsets, padded with spaces so the data section starts 8-byte aligned.
 */
export function encodeHeader(metadata: HeaderMetadata, tensors: readonly TensorLayout[]): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const tensor of tensors) {
    const length = byteLengthOf(tensor);
    header[tensor.name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + length] };
    offset += length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const bytes = new Uint8Array(8 + padded).fill(0x20);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return bytes;
}

export function byteLengthOf(tensor: TensorLayout): number {
  return elementCount(tensor.shape) * DTYPE_BYTES[tensor.dtype];
}

/** A safetensors file as the chunks to write in order (header, then each tensor's bytes), without copying. */
export function serializeSafetensors(metadata: HeaderMetadata, tensors: readonly TensorToWrite[]): Uint8Array[] {
  for (const tensor of tensors) {
    if (byteLengthOf(tensor) !== tensor.data.byteLength) {
      throw new RangeError(`tensor "${tensor.name}": shape [${tensor.shape}] of ${tensor.dtype} needs ${byteLengthOf(tensor)} bytes, got ${tensor.data.byteLength}`);
    }
  }
  return [encodeHeader(metadata, tensors), ...tensors.map((tensor) => tensor.data)];
}

/** Writes chunks to a new file (never over an existing one) and flushes it to disk. */
export async function writeChunks(path: string, chunks: Iterable<Uint8Array>): Promise<void> {
  const handle = await open(path, "wx");
  try {
    for (const chunk of chunks) await handle.write(chunk);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes a complete safetensors file. Callers that need atomicity write into a staging folder. */
export async function writeSafetensors(path: string, metadata: HeaderMetadata, tensors: readonly TensorToWrite[]): Promise<void> {
  await writeChunks(path, serializeSafetensors(metadata, tensors));
}
