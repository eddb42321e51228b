import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeSafetensors } from "../../src/safetensors/write.js";
import { readForRewrite } from "./tensors.js";

/**
 * Splits `dir/model.safetensors` into `shards` files with a `model.safetensors.index.json`, as
 * save_pretrained does for large models, and removes the single file.
 */
export async function shardCheckpoint(dir: string, shards: number): Promise<void> {
  const { tensors } = await readForRewrite(join(dir, "model.safetensors"));
  const weightMap: Record<string, string> = {};
  const perShard = Math.ceil(tensors.length / shards);
  for (let shard = 0; shard < shards; shard++) {
    const name = `model-${String(shard + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
    const part = tensors.slice(shard * perShard, (shard + 1) * perShard);
    for (const tensor of part) weightMap[tensor.name] = name;
    await writeSafetensors(join(dir, name), { format: "pt" }, part);
  }
  const totalSize = tensors.reduce((sum, tensor) => sum + tensor.data.byteLength, 0);
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2));
  rmSync(join(dir, "model.safetensors"));
}
