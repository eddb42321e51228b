import { SafeLoraError } from "../errors.js";
import type { ByteSource } from "../storage/byte-source.js";
import { DTYPE_BYTES, isDtype, type Dtype } from "./dtype.js";
import { MetadataEntries, TensorEntry, type HeaderMetadata } from "./schema.js";

/**
 * The reference implementation refuses headers above 100 MB; so do we, before allocating anything,
 * so that a corrupt length field cannot make us read gigabytes or hang.
 */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * Each tensor entry costs about a kilobyte once parsed, so a 100 MB header of empty tensors would take
 * gigabytes. A LoRA adapter on every expert of the largest MoE models has about 100 k tensors, a checkpoint
 * shard a few thousand; twice the former is the cap, counted before anything is parsed.
 */
export const MAX_TENSORS = 200_000;

/** Where one tensor lives in its file. `begin`/`end` are absolute file offsets. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  /** `__metadata__`, empty when absent. */
  readonly metadata: HeaderMetadata;
  /** Tensors in the order of their data offsets (the order a writer laid them out). */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Bytes before the data section: the 8-byte length prefix plus the JSON header. */
  readonly dataStart: number;
  /** The header JSON as stored, so caches can keep it and re-validate it later. */
  readonly json: string;
}

function malformed(where: string, problem: string): SafeLoraError {
  return new SafeLoraError(
    `${where} is not a valid safetensors file: ${problem}. Re-save it with the safetensors library (save_file / save_pretrained).`,
    "malformed-safetensors",
  );
}

/** A name from a header, quoted for a message and cut short: names are outside text of any length. */
function quoted(name: string): string {
  const json = JSON.stringify(name);
  return json.length > 120 ? `${json.slice(0, 100)}…"` : json;
}

/**
 * JSON.parse keeps the last of two equal keys, so a header could say one thing to this reader and another to a
 * reader that keeps the first. This pass over the text refuses equal keys in any object of the header, and
 * counts the tensors before JSON.parse allocates them. Grammar errors are left to JSON.parse.
 */
function checkKeys(where: string, json: string): void {
  // One set of keys per open object; null for an open array.
  const open: Array<Set<string> | null> = [];
  let expectKey = false;
  let tensors = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x22) {
      const start = i;
      let escaped = false;
      for (i++; i < json.length; i++) {
        const d = json.charCodeAt(i);
        if (d === 0x22) break;
        if (d === 0x5c) {
          escaped = true;
          i++;
        }
      }
      if (!expectKey) continue;
      expectKey = false;
      let key: string;
      try {
        key = escaped ? (JSON.parse(json.slice(start, i + 1)) as string) : json.slice(start + 1, i);
      } catch (error) {
        throw malformed(where, `the header is not JSON (${(error as Error).message})`);
      }
      const keys = open.at(-1)!;
      if (keys.has(key)) throw malformed(where, `the key ${quoted(key)} appears twice in the header${open.length > 1 ? " (inside an entry)" : ""}`);
      keys.add(key);
      if (open.length === 1 && key !== "__metadata__" && ++tensors > MAX_TENSORS) {
        throw malformed(where, `its header lists more than ${MAX_TENSORS} tensors, the most this tool reads`);
      }
    } else if (c === 0x7b) {
      open.push(new Set());
      expectKey = true;
    } else if (c === 0x5b) {
      open.push(null);
      expectKey = false;
    } else if (c === 0x7d || c === 0x5d) {
      open.pop();
      expectKey = false;
    } else if (c === 0x2c) {
      expectKey = open.at(-1) instanceof Set;
    }
  }
}

/** `__metadata__` exactly as stored: every key kept, `__proto__` included (a plain record would drop it). */
function parseMetadata(where: string, value: unknown): HeaderMetadata {
  const entries = value !== null && typeof value === "object" && !Array.isArray(value) ? MetadataEntries.safeParse(Object.entries(value)) : null;
  if (!entries?.success) throw malformed(where, "__metadata__ must map strings to strings");
  // Object.fromEntries defines own properties, so a "__proto__" key stays a key and sets no prototype.
  return Object.fromEntries(entries.data);
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

/**
 * Parses and validates the header of a safetensors file given its JSON text and the file's size.
 * Applies the format's rules: known dtypes, shape × dtype = byte length, offsets inside the data
 * section, contiguous, without overlaps or holes.
 */
export function parseHeader(where: string, json: string, headerLength: number, fileSize: number): SafetensorsHeader {
  if (json.startsWith("\uFEFF")) throw malformed(where, "the header starts with a byte-order mark before '{'");
  if (!json.startsWith("{")) throw malformed(where, "the header does not start with '{'");
  checkKeys(where, json);
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (error) {
    throw malformed(where, `the header is not JSON (${(error as Error).message})`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw malformed(where, "the header is not a JSON object");

  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  let metadata: HeaderMetadata = {};
  const entries: TensorInfo[] = [];
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(where, value);
      continue;
    }
    const parsed = TensorEntry.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw malformed(where, `tensor "${name}": ${issue?.path.join(".") || "entry"} ${issue?.message ?? "is invalid"}`);
    }
    const { dtype, shape, data_offsets: [begin, end] } = parsed.data;
    if (!isDtype(dtype)) throw malformed(where, `tensor "${name}" has unknown dtype "${dtype}"`);
    if (end < begin) throw malformed(where, `tensor "${name}" ends (${end}) before it begins (${begin})`);
    const expected = elementCount(shape) * DTYPE_BYTES[dtype];
    if (!Number.isSafeInteger(expected) || expected !== end - begin) {
      throw malformed(where, `tensor "${name}" has shape [${shape}] of ${dtype} (${expected} bytes) but spans ${end - begin} bytes`);
    }
    if (end > dataSize) {
      throw malformed(where, `tensor "${name}" ends at byte ${end} of the data section, which holds only ${dataSize} bytes (truncated file?)`);
    }
    entries.push({ name, dtype, shape, begin: dataStart + begin, end: dataStart + end });
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = dataStart;
  for (const entry of entries) {
    if (entry.begin < cursor) throw malformed(where, `tensor "${entry.name}" overlaps the tensor before it`);
    if (entry.begin > cursor) throw malformed(where, `there is a hole of ${entry.begin - cursor} bytes before tensor "${entry.name}"`);
    cursor = entry.end;
  }
  if (cursor !== fileSize) throw malformed(where, `${fileSize - cursor} bytes after the last tensor belong to no tensor`);

  return { metadata, tensors: new Map(entries.map((entry) => [entry.name, entry])), dataStart, json };
}

/** Reads and validates the header of a safetensors file, touching only its first 8 + N bytes. */
export async function readHeader(source: ByteSource): Promise<SafetensorsHeader> {
  if (source.size < 8) throw malformed(source.description, `it is ${source.size} bytes long, shorter than the 8-byte length prefix`);
  const prefix = await source.read(0, 8);
  const length = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw malformed(source.description, `its header claims ${length} bytes, more than the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const headerLength = Number(length);
  if (8 + headerLength > source.size) {
    throw malformed(source.description, `its header claims ${headerLength} bytes but the file has only ${source.size - 8} after the prefix`);
  }
  const bytes = await source.read(8, headerLength);
  let json: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text, where parseHeader refuses it; by default it vanishes.
    json = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw malformed(source.description, "the header is not valid UTF-8");
  }
  return parseHeader(source.description, json, headerLength, source.size);
}
