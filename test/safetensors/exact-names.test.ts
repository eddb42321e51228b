import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import { MAX_TENSORS } from "../../src/safetensors/header.js";
import { SafetensorsFile } from "../../src/safetensors/safetensors-file.js";
import { serializeSafetensors } from "../../src/safetensors/write.js";
import { runCli } from "../helpers/cli.js";
import { copyGolden } from "../helpers/fixture-copy.js";
import { rawSafetensors, writeRaw } from "../helpers/safetensors-bytes.js";
import { readForRewrite } from "../helpers/tensors.js";

const dir = mkdtempSync(join(tmpdir(), "safe-lora-names-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let counter = 0;
const open = (bytes: Uint8Array) => SafetensorsFile.openPath(writeRaw(join(dir, `f${counter++}.safetensors`), bytes));
const refusal = (bytes: Uint8Array) =>
  open(bytes).then(
    () => null,
    (error: unknown) => error,
  );
const entry = (begin: number, end: number) => `{"dtype":"F32","shape":[${(end - begin) / 4}],"data_offsets":[${begin},${end}]}`;

describe("header keys are read exactly as they are written", () => {
  it("keeps a tensor named __proto__ and a __metadata__ key __proto__ as ordinary names", async () => {
    const file = await open(rawSafetensors(`{"__metadata__":{"__proto__":"kept","format":"pt"},"__proto__":${entry(0, 4)},"a":${entry(4, 8)}}`, 8));
    expect([...file.header.tensors.keys()]).toEqual(["__proto__", "a"]);
    expect(Object.entries(file.header.metadata)).toEqual([
      ["__proto__", "kept"],
      ["format", "pt"],
    ]);
    await file.close();
  });

  it("writes them back byte for byte, and the written file reads back the same", async () => {
    const json = `{"__metadata__":{"__proto__":"kept"},"__proto__":${entry(0, 4)},"a":${entry(4, 8)}}`;
    // Padded with spaces to 8 bytes, as the reference writer does.
    const input = rawSafetensors(json.padEnd(Math.ceil(json.length / 8) * 8, " "), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    const path = writeRaw(join(dir, "proto-in.safetensors"), input);
    const { metadata, tensors } = await readForRewrite(path);
    const written = Buffer.concat(serializeSafetensors(metadata, tensors));
    expect(written.equals(Buffer.from(input))).toBe(true);
  });

  const refused: Array<[string, Uint8Array, RegExp]> = [
    ["two tensors of one name (JSON.parse keeps the last)", rawSafetensors(`{"a":${entry(0, 4)},"a":${entry(4, 8)}}`, 8), /the key "a" appears twice in the header/],
    ["two __metadata__ objects", rawSafetensors(`{"__metadata__":{"x":"1"},"__metadata__":{"x":"2"}}`, 0), /the key "__metadata__" appears twice/],
    ["a metadata key twice", rawSafetensors(`{"__metadata__":{"x":"1","x":"2"}}`, 0), /the key "x" appears twice in the header \(inside an entry\)/],
    ["a field of an entry twice", rawSafetensors(`{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, 4), /the key "dtype" appears twice/],
    ["the same key spelt with an escape", rawSafetensors(`{"a":${entry(0, 4)},"\\u0061":${entry(4, 8)}}`, 8), /the key "a" appears twice/],
    ["a byte-order mark before {", rawSafetensors(`\uFEFF{"a":${entry(0, 4)}}`, 4), /starts with a byte-order mark before '\{'/],
  ];
  it.each(refused)("refuses %s", async (_what, bytes, message) => {
    const error = await refusal(bytes);
    expect(error).toBeInstanceOf(SafeLoraError);
    expect((error as SafeLoraError).code).toBe("malformed-safetensors");
    expect((error as Error).message).toMatch(message);
  });

  it("does not mistake keys inside strings, arrays or values for duplicates", async () => {
    const file = await open(rawSafetensors(`{"__metadata__":{"a":"\\"a\\":{,","b":"a"},"a":${entry(0, 4)},"b":${entry(4, 8)}}`, 8));
    expect([...file.header.tensors.keys()]).toEqual(["a", "b"]);
    await file.close();
  });

  it("refuses a header of more tensors than the cap before parsing them", async () => {
    const members = Array.from({ length: MAX_TENSORS + 1 }, (_, i) => `"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`);
    const error = await refusal(rawSafetensors(`{${members.join(",")}}`, 0));
    expect((error as Error).message).toMatch(new RegExp(`its header lists more than ${MAX_TENSORS} tensors, the most this tool reads`));
  });

  it("never writes a file its own reader refuses", () => {
    const tensor = { name: "a", dtype: "F32" as const, shape: [1], data: new Uint8Array(4) };
    expect(() => serializeSafetensors({}, [tensor, tensor])).toThrow(/would not read back: .*the key "a" appears twice/);
    expect(() => serializeSafetensors({}, [{ ...tensor, name: "__metadata__" }])).toThrow(/would not read back/);
  });
});

describe("safe-lora patch on an adapter with a tensor named __proto__", () => {
  it("copies it unchanged and writes a file that reads back with every tensor and metadata key", async () => {
    const fixture = copyGolden("llama-gqa-qv");
    try {
      const weights = join(fixture.adapter, "adapter_model.safetensors");
      const { metadata, tensors } = await readForRewrite(weights);
      // Built by hand, so that the writer under test does not make its own input.
      const members = [`"__metadata__":${JSON.stringify({ ...metadata, seed: "1" }).replace('"seed"', '"__proto__"')}`];
      let offset = 0;
      for (const tensor of [...tensors, { name: "__proto__", dtype: "F32", shape: [2], data: new Uint8Array(new Float32Array([3, 4]).buffer) }]) {
        members.push(`${JSON.stringify(tensor.name)}:${JSON.stringify({ dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + tensor.data.byteLength] })}`);
        offset += tensor.data.byteLength;
      }
      const data = Buffer.concat([...tensors.map((tensor) => tensor.data), new Uint8Array(new Float32Array([3, 4]).buffer)]);
      writeFileSync(weights, rawSafetensors(`{${members.join(",")}}`, data));

      const out = join(fixture.root, "out");
      const result = await runCli(["patch", "--adapter", fixture.adapter, "--base", fixture.base, "--aligned", fixture.chat, "--out", out, "--json"]);
      expect(result.stderr).not.toMatch(/safe-lora: /);
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ untouchedTensors: expect.arrayContaining(["__proto__"]) });
      const written = await SafetensorsFile.openPath(join(out, "adapter_model.safetensors"));
      expect([...written.header.tensors.keys()]).toContain("__proto__");
      expect(Array.from(new Float32Array((await written.readBytes("__proto__")).slice().buffer))).toEqual([3, 4]);
      expect(Object.hasOwn(written.header.metadata, "__proto__")).toBe(true);
      expect(written.header.metadata.__proto__).toBe("1");
      await written.close();
      expect(readFileSync(join(out, "adapter_model.safetensors")).byteLength).toBe(written.header.dataStart + data.byteLength);
    } finally {
      fixture.remove();
    }
  });
});
