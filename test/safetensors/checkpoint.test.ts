import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SafeLoraReport } from "../../src/report/schema.js";
import { Checkpoint } from "../../src/safetensors/checkpoint.js";
import { LocalFolder } from "../../src/storage/local-folder.js";
import { runCli } from "../helpers/cli.js";
import { copyGolden, type CaseCopy } from "../helpers/fixture-copy.js";
import { goldenPath } from "../helpers/golden.js";
import { shardCheckpoint } from "../helpers/shard.js";

let fixture: CaseCopy;
beforeEach(() => {
  fixture = copyGolden("llama-gqa-qv");
});
afterEach(() => fixture.remove());

describe("sharded checkpoints", () => {
  it("reads a tensor from the shard the index names, opening only that shard", async () => {
    await shardCheckpoint(fixture.base, 3);
    const folder = new LocalFolder(fixture.base);
    const checkpoint = await Checkpoint.open(folder);
    const name = "model.layers.3.self_attn.v_proj.weight";
    const info = await checkpoint.info(name);
    expect(info.shape).toEqual([32, 64]);
    const bytes = await checkpoint.readBytes(name);
    expect(bytes.byteLength).toBe(32 * 64 * 4);
    const index = Buffer.byteLength(JSON.stringify(JSON.parse(await new LocalFolder(fixture.base).readText("model.safetensors.index.json")), null, 2));
    // index + one shard's prefix and header + the tensor: the other shards were never opened.
    expect(folder.bytesRead).toBeLessThan(index + 4096 + bytes.byteLength);
    await checkpoint.close();
  });

  it("patches with sharded base and aligned models exactly as with single files", async () => {
    const single = await runCli(["patch", "--adapter", fixture.adapter, "--base", fixture.base, "--aligned", fixture.chat, "--out", join(fixture.root, "a"), "--select", "top-k:3", "--json"]);
    await shardCheckpoint(fixture.base, 3);
    await shardCheckpoint(fixture.chat, 2);
    const sharded = await runCli(["patch", "--adapter", fixture.adapter, "--base", fixture.base, "--aligned", fixture.chat, "--out", join(fixture.root, "b"), "--select", "top-k:3", "--json"]);
    expect(sharded.code).toBe(0);
    const cosines = (run: typeof single) => SafeLoraReport.parse(JSON.parse(run.stdout)).modules.map((m) => [m.name, m.cosineExact, m.projected]);
    expect(cosines(sharded)).toEqual(cosines(single));
  });

  it("refuses an index that is not a shard index", async () => {
    writeFileSync(join(fixture.base, "model.safetensors.index.json"), JSON.stringify({ weights: {} }));
    await expect(Checkpoint.open(new LocalFolder(fixture.base))).rejects.toThrow(/is not a valid shard index/);
  });

  it("refuses an index that points at a shard without the tensor", async () => {
    writeFileSync(join(fixture.base, "model.safetensors.index.json"), JSON.stringify({ weight_map: { "model.layers.0.self_attn.q_proj.weight": "model.safetensors", ghost: "model.safetensors" } }));
    const checkpoint = await Checkpoint.open(new LocalFolder(fixture.base));
    await expect(checkpoint.info("ghost")).rejects.toThrow(/puts "ghost" in model.safetensors, but that file does not hold it/);
    await checkpoint.close();
  });

  it("names the folder when it holds no checkpoint", async () => {
    await expect(Checkpoint.open(new LocalFolder(goldenPath("llama-gqa-qv", "adapter")))).rejects.toThrow(/has neither model.safetensors nor model.safetensors.index.json/);
  });
});
