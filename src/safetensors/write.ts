import { open, type FileHandle } from "node:fs/promises";
import { DTYPE_BYTES, type Dtype } from "./dtype.js";
import { elementCount, parseHeader } from "./header.js";
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
 * A JSON object from its keys and their values' JSON text, in order. Written by hand because assigning a
 * "__proto__" key to an object sets its prototype instead, and JSON.stringify then drops the entry.
 */
function objectJson(members: ReadonlyArray<readonly [string, string]>): string {
  return `{${members.map(([key, valueJson]) => `${JSON.stringify(key)}:${valueJson}`).join(",")}}`;
}

/**
 * The header exactly as the reference writer lays it out: compact JSON, `__metadata__` first, tensors in
 * data order with contiguous offsets, padded with spaces so the data section starts 8-byte aligned.
 */
export function encodeHeader(metadata: HeaderMetadata, tensors: readonly TensorLayout[]): Uint8Array {
  const members: Array<[string, string]> = [];
  const metadataMembers = Object.entries(metadata).map(([key, value]): [string, string] => [key, JSON.stringify(value)]);
  if (metadataMembers.length > 0) members.push(["__metadata__", objectJson(metadataMembers)]);
  let offset = 0;
  for (const tensor of tensors) {
    const length = byteLengthOf(tensor);
    members.push([tensor.name, JSON.stringify({ dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + length] })]);
    offset += length;
  }
  const json = new TextEncoder().encode(objectJson(members));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const bytes = new Uint8Array(8 + padded).fill(0x20);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return bytes;
}

export function byteLengthOf(tensor: TensorLayout): number {
  return elementCount(tensor.shape) * DTYPE_BYTES[tensor.dtype];
}

/**
 * Every file this tool writes must read back, with its own strict reader, as exactly what was meant: the same
 * tensors in order and the same metadata. A name the format cannot hold (a second tensor of one name,
 * "__metadata__") fails here, before anything is written or committed.
 */
function checkReadsBack(header: Uint8Array, metadata: HeaderMetadata, tensors: readonly TensorLayout[]): void {
  const dataSize = tensors.reduce((sum, tensor) => sum + byteLengthOf(tensor), 0);
  let parsed;
  try {
    parsed = parseHeader("the safetensors file being written", new TextDecoder().decode(header.subarray(8)), header.byteLength - 8, header.byteLength + dataSize);
  } catch (error) {
    throw new Error(`the safetensors file being written would not read back: ${(error as Error).message}`, { cause: error });
  }
  const read = [...parsed.tensors.values()];
  const sameTensors =
    read.length === tensors.length && tensors.every((tensor, i) => read[i]!.name === tensor.name && read[i]!.dtype === tensor.dtype && String(read[i]!.shape) === String(tensor.shape));
  const expected = Object.entries(metadata);
  const sameMetadata = Object.entries(parsed.metadata).length === expected.length && expected.every(([key, value]) => Object.hasOwn(parsed.metadata, key) && parsed.metadata[key] === value);
  if (!sameTensors || !sameMetadata) throw new Error("the safetensors file being written reads back with other tensors or metadata than were written");
}

/** Writes all of `data` at the file's current position (a single write may take less than it was given). */
async function writeAll(handle: FileHandle, data: Uint8Array): Promise<number> {
  for (let done = 0; done < data.byteLength; ) done += (await handle.write(data, done, data.byteLength - done)).bytesWritten;
  return data.byteLength;
}

function checkLength(tensor: TensorLayout, data: Uint8Array): Uint8Array {
  if (byteLengthOf(tensor) !== data.byteLength) {
    throw new RangeError(`tensor "${tensor.name}": shape [${tensor.shape}] of ${tensor.dtype} needs ${byteLengthOf(tensor)} bytes, got ${data.byteLength}`);
  }
  return data;
}

/** The header of a file holding `tensors`, checked to read back as exactly them (see checkReadsBack). */
function checkedHeader(metadata: HeaderMetadata, tensors: readonly TensorLayout[]): Uint8Array {
  const header = encodeHeader(metadata, tensors);
  checkReadsBack(header, metadata, tensors);
  return header;
}

/** A safetensors file as the chunks to write in order (header, then each tensor's bytes), without copying. */
export function serializeSafetensors(metadata: HeaderMetadata, tensors: readonly TensorToWrite[]): Uint8Array[] {
  for (const tensor of tensors) checkLength(tensor, tensor.data);
  return [checkedHeader(metadata, tensors), ...tensors.map((tensor) => tensor.data)];
}

/** Writes chunks (bytes, or blobs such as files staged on disk, streamed) to a new file, never over an existing one, and flushes it to disk. */
export async function writeChunks(path: string, chunks: Iterable<Uint8Array | Blob>): Promise<void> {
  const handle = await open(path, "wx");
  try {
    for (const chunk of chunks) {
      if (chunk instanceof Blob) for await (const part of chunk.stream()) await writeAll(handle, part);
      else await writeAll(handle, chunk);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes a safetensors file tensor by tensor, asking `dataOf` for each tensor's bytes only when it is written,
 * so a file of any size passes through memory one tensor at a time. The same bytes as serializeSafetensors.
 */
export async function writeSafetensorsFrom(path: string, metadata: HeaderMetadata, tensors: readonly TensorLayout[], dataOf: (tensor: TensorLayout) => Promise<Uint8Array>): Promise<number> {
  const header = checkedHeader(metadata, tensors);
  const handle = await open(path, "wx");
  let size = header.byteLength;
  try {
    await writeAll(handle, header);
    for (const tensor of tensors) size += await writeAll(handle, checkLength(tensor, await dataOf(tensor)));
    await handle.sync();
  } finally {
    await handle.close();
  }
  return size;
}

/** Writes a complete safetensors file. Callers that need atomicity write into a staging folder. */
export async function writeSafetensors(path: string, metadata: HeaderMetadata, tensors: readonly TensorToWrite[]): Promise<void> {
  await writeChunks(path, serializeSafetensors(metadata, tensors));
}
