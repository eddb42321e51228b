import { SafetensorsFile } from "../../src/safetensors/safetensors-file.js";
import { decodeToFloat32 } from "../../src/safetensors/dtype.js";
import type { HeaderMetadata } from "../../src/safetensors/schema.js";
import type { TensorToWrite } from "../../src/safetensors/write.js";

/** A file's tensors in layout order, ready to hand back to the writer, and its metadata. */
export async function readForRewrite(path: string): Promise<{ metadata: HeaderMetadata; tensors: TensorToWrite[] }> {
  const file = await SafetensorsFile.openPath(path);
  try {
    const tensors: TensorToWrite[] = [];
    for (const info of file.header.tensors.values()) {
      tensors.push({ name: info.name, dtype: info.dtype, shape: info.shape, data: await file.readBytes(info.name) });
    }
    return { metadata: file.header.metadata, tensors };
  } finally {
    await file.close();
  }
}

/** Every tensor of a safetensors file: header info and raw bytes. */
export async function readAllTensors(path: string) {
  const file = await SafetensorsFile.openPath(path);
  try {
    const tensors = new Map<string, { dtype: string; shape: readonly number[]; bytes: Uint8Array; values: () => Float32Array }>();
    for (const info of file.header.tensors.values()) {
      const bytes = await file.readBytes(info.name);
      tensors.set(info.name, { dtype: info.dtype, shape: info.shape, bytes, values: () => decodeToFloat32(bytes, info.dtype) });
    }
    return { metadata: file.header.metadata, tensors };
  } finally {
    await file.close();
  }
}

/** max |a − b| / max |b|: the error of `a` relative to the scale of the reference `b`. */
export function maxAbsRelative(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return scale === 0 ? diff : diff / scale;
}
