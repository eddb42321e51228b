import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { writeSafetensors } from "../../src/safetensors/write.js";
import { GOLDEN_CASES, goldenPath } from "../helpers/golden.js";
import { readAllTensors, readForRewrite } from "../helpers/tensors.js";

const dir = mkdtempSync(join(tmpdir(), "safe-lora-roundtrip-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const files = GOLDEN_CASES.flatMap((caseName) => [
  [caseName, "adapter/adapter_model.safetensors"],
  [caseName, "base/model.safetensors"],
]);

describe.each(files)("%s %s written back by our reader and writer", (caseName, file) => {
  const input = goldenPath(caseName, file);
  const output = join(dir, `${caseName}-${file.replace(/\W/g, "_")}`);

  it("keeps every tensor's bytes, dtype and shape, and the metadata", async () => {
    const { metadata, tensors } = await readForRewrite(input);
    await writeSafetensors(output, metadata, tensors);

    const before = await readAllTensors(input);
    const after = await readAllTensors(output);
    expect(after.metadata).toEqual(before.metadata);
    expect([...after.tensors.keys()]).toEqual([...before.tensors.keys()]);
    for (const [name, tensor] of before.tensors) {
      const copy = after.tensors.get(name)!;
      expect(copy.dtype).toBe(tensor.dtype);
      expect(copy.shape).toEqual(tensor.shape);
      expect(Buffer.from(copy.bytes).equals(Buffer.from(tensor.bytes)), name).toBe(true);
    }
  });

  it("follows the format's rules: 8-byte aligned data, contiguous offsets from 0 to the end", () => {
    const bytes = readFileSync(output);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect((8 + headerLength) % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8")) as Record<string, { data_offsets?: [number, number] }>;
    const ranges = Object.entries(header)
      .filter(([key]) => key !== "__metadata__")
      .map(([, entry]) => entry.data_offsets!)
      .sort((a, b) => a[0] - b[0]);
    let cursor = 0;
    for (const [begin, end] of ranges) {
      expect(begin).toBe(cursor);
      cursor = end;
    }
    expect(8 + headerLength + cursor).toBe(bytes.byteLength);
  });

  it("lays the file out as the reference writer does (same bytes as the input)", () => {
    expect(readFileSync(output).equals(readFileSync(input))).toBe(true);
  });
});
