import { writeFileSync } from "node:fs";

/** Builds the bytes of a safetensors file from a header object as given, valid or not. */
export function rawSafetensors(header: unknown, data: Uint8Array | number, options: { declaredLength?: bigint } = {}): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const body = typeof data === "number" ? new Uint8Array(data) : data;
  const bytes = new Uint8Array(8 + json.byteLength + body.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, options.declaredLength ?? BigInt(json.byteLength), true);
  bytes.set(json, 8);
  bytes.set(body, 8 + json.byteLength);
  return bytes;
}

export function writeRaw(path: string, bytes: Uint8Array): string {
  writeFileSync(path, bytes);
  return path;
}
