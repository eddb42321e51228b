import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Checkpoint, SHARD_INDEX } from "../../src/safetensors/checkpoint.js";
import { encodeFromFloat32 } from "../../src/safetensors/dtype.js";
import { SafetensorsFile } from "../../src/safetensors/safetensors-file.js";
import { planShards, shardFileName, writeShardedSafetensors } from "../../src/safetensors/sharded-write.js";
import type { TensorToWrite } from "../../src/safetensors/write.js";
import { LocalFolder } from "../../src/storage/local-folder.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "sharded-write-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A tensor of `count` F32 values (4 bytes each), every value its index plus `start`. */
const tensor = (name: string, count: number, start = 0): TensorToWrite => ({
  name,
  dtype: "F32",
  shape: [count],
  data: encodeFromFloat32(Float32Array.from({ length: count }, (_, i) => start + i), "F32"),
});

const write = (tensors: TensorToWrite[], maxShardBytes: number) => {
  const asked: string[] = [];
  const written = writeShardedSafetensors({
    pathOf: (name) => join(dir, name),
    metadata: { format: "pt" },
    tensors,
    dataOf: async (layout) => {
      asked.push(layout.name);
      return tensors.find((t) => t.name === layout.name)!.data;
    },
    maxShardBytes,
  });
  return { written, asked };
};

describe("writeShardedSafetensors", () => {
  it("cuts tensors in order into shards of at most the cap, a larger tensor alone", () => {
    const sizes = [10, 10, 30, 5, 5, 5].map((count, i) => tensor(`t${i}`, count));
    expect(planShards(sizes, 80).map((shard) => shard.map((t) => t.name))).toEqual([["t0", "t1"], ["t2"], ["t3", "t4", "t5"]]);
    expect(planShards(sizes, 1).map((shard) => shard.length)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(planShards(sizes, 1e9).map((shard) => shard.length)).toEqual([6]);
    expect(shardFileName(2, 13)).toBe("model-00002-of-00013.safetensors");
  });

  it("writes the Hub's layout: numbered shards and an index whose weight_map names every tensor once and whose total_size is their bytes", async () => {
    const tensors = [tensor("model.layers.1.w", 10, 100), tensor("model.layers.0.w", 10), tensor("__proto__", 30, 7), tensor("lm_head.weight", 5, -3)];
    const { written, asked } = write(tensors, 80);
    const result = await written;
    expect(asked).toEqual(tensors.map((t) => t.name));
    expect(result).toEqual({ shards: [shardFileName(1, 3), shardFileName(2, 3), shardFileName(3, 3)], index: SHARD_INDEX, totalSize: 220 });
    expect(readdirSync(dir).sort()).toEqual([...result.shards, SHARD_INDEX].sort());
    // As transformers writes it: keys sorted, two-space indent, a final newline.
    const text = readFileSync(join(dir, SHARD_INDEX), "utf8");
    const [one, two, three] = result.shards;
    expect(text).toBe(
      [
        "{",
        '  "metadata": {',
        '    "total_size": 220',
        "  },",
        '  "weight_map": {',
        `    "__proto__": "${two}",`,
        `    "lm_head.weight": "${three}",`,
        `    "model.layers.0.w": "${one}",`,
        `    "model.layers.1.w": "${one}"`,
        "  }",
        "}",
        "",
      ].join("\n"),
    );
    expect(Object.keys(JSON.parse(text).weight_map)).toEqual(["__proto__", "lm_head.weight", "model.layers.0.w", "model.layers.1.w"]);

    // The project's reader opens it as a checkpoint with every tensor's bytes as given; but for "__proto__", which
    // its ShardIndex schema (a zod record) drops from weight_map: a limit of the reader, not of what was written.
    const checkpoint = await Checkpoint.open(new LocalFolder(dir));
    const readable = tensors.filter((t) => t.name !== "__proto__");
    expect([...checkpoint.names()].sort()).toEqual(readable.map((t) => t.name).sort());
    for (const t of readable) expect(Buffer.from(await checkpoint.readBytes(t.name)).equals(Buffer.from(t.data))).toBe(true);
    await checkpoint.close();
    const first = await SafetensorsFile.openPath(join(dir, result.shards[0]!));
    expect([...first.header.tensors.keys()]).toEqual(["model.layers.1.w", "model.layers.0.w"]);
    expect(first.header.metadata).toEqual({ format: "pt" });
    await first.close();
  });

  it("refuses a tensor name twice before writing anything", async () => {
    const { written } = write([tensor("a", 2), tensor("b", 2), tensor("a", 2)], 8);
    await expect(written).rejects.toThrow('holds tensor "a" twice');
    expect(readdirSync(dir)).toEqual([]);
  });
});
