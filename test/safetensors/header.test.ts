import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import { SafetensorsFile } from "../../src/safetensors/safetensors-file.js";
import { rawSafetensors, writeRaw } from "../helpers/safetensors-bytes.js";

const dir = mkdtempSync(join(tmpdir(), "safe-lora-header-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let counter = 0;
async function open(bytes: Uint8Array) {
  return SafetensorsFile.openPath(writeRaw(join(dir, `f${counter++}.safetensors`), bytes));
}

const t = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });

describe("reading a valid file", () => {
  it("parses metadata and tensors, and reads one tensor by its range", async () => {
    const data = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
    const file = await open(rawSafetensors({ __metadata__: { format: "pt" }, b: t("F32", [2], 16, 24), a: t("F32", [2, 2], 0, 16) }, data));
    expect(file.header.metadata).toEqual({ format: "pt" });
    expect([...file.header.tensors.keys()]).toEqual(["a", "b"]);
    expect(Array.from(new Float32Array((await file.readBytes("b")).buffer))).toEqual([5, 6]);
    // The length prefix and header (dataStart bytes), then only the 8 bytes of "b".
    expect(file.source.bytesRead).toBe(file.header.dataStart + 8);
    await file.close();
  });
});

describe("rejecting malformed files with a clear error", () => {
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ["a file shorter than the length prefix", new Uint8Array(5), /shorter than the 8-byte length prefix/],
    ["a header length past the end of the file", rawSafetensors({}, 0, { declaredLength: 4096n }), /header claims 4096 bytes but the file has only/],
    ["an absurd header size", rawSafetensors({}, 0, { declaredLength: 2n ** 62n }), /more than the 100000000-byte limit/],
    ["a header that is not JSON", rawSafetensors("{not json", 0), /not JSON/],
    ["a header that does not start with {", rawSafetensors("[1,2]", 0), /does not start with/],
    ["an unknown dtype", rawSafetensors({ a: t("F7", [1], 0, 1) }, 1), /unknown dtype "F7"/],
    ["shape × dtype ≠ byte length", rawSafetensors({ a: t("F32", [3], 0, 8) }, 8), /\(12 bytes\) but spans 8 bytes/],
    ["offsets past the data section", rawSafetensors({ a: t("F32", [4], 0, 16) }, 8), /truncated file/],
    ["overlapping tensors", rawSafetensors({ a: t("F32", [2], 0, 8), b: t("F32", [2], 4, 12) }, 12), /overlaps/],
    ["a hole between tensors", rawSafetensors({ a: t("F32", [1], 0, 4), b: t("F32", [1], 8, 12) }, 12), /hole of 4 bytes/],
    ["bytes after the last tensor", rawSafetensors({ a: t("F32", [1], 0, 4) }, 8), /4 bytes after the last tensor/],
    ["offsets that end before they begin", rawSafetensors({ a: t("F32", [0], 8, 4) }, 8), /ends \(4\) before it begins/],
    ["a negative dimension", rawSafetensors({ a: t("F32", [-1], 0, 4) }, 4), /shape/],
    ["non-string metadata", rawSafetensors({ __metadata__: { n: 1 } }, 0), /__metadata__ must map strings to strings/],
  ];
  it.each(cases)("%s", async (_what, bytes, message) => {
    const error = await open(bytes).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SafeLoraError);
    expect((error as SafeLoraError).code).toBe("malformed-safetensors");
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toMatch(/Re-save it with the safetensors library/);
  });
});
