import { SHARD_INDEX } from "./checkpoint.js";
import type { HeaderMetadata } from "./schema.js";
import { byteLengthOf, writeChunks, writeSafetensorsFrom, type TensorLayout } from "./write.js";

/** transformers' default `max_shard_size` ("5GB", which it reads in powers of ten). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

/** A sharded checkpoint as written: its shard files in order, the index beside them, and the tensor bytes in all. */
export interface WrittenShards {
  /** `model-00001-of-0000N.safetensors`, … in order. */
  readonly shards: readonly string[];
  /** Always SHARD_INDEX. */
  readonly index: string;
  /** The index's `metadata.total_size`: the tensors' bytes, headers not counted (as transformers counts it). */
  readonly totalSize: number;
}

export interface WriteShardsParams {
  /** Where a file of the checkpoint goes, by its name (a staging folder's `file`, or a join). */
  readonly pathOf: (fileName: string) => string;
  /** `__metadata__` of every shard. */
  readonly metadata: HeaderMetadata;
  /** Every tensor, in the order they are laid out across the shards. */
  readonly tensors: readonly TensorLayout[];
  /** A tensor's bytes, asked for only when it is written: the checkpoint passes through memory a tensor at a time. */
  readonly dataOf: (tensor: TensorLayout) => Promise<Uint8Array>;
  /** A shard is closed before it would hold more tensor bytes than this; a larger tensor gets a shard of its own. */
  readonly maxShardBytes?: number;
}

/** transformers' shard names: `model-00001-of-00003.safetensors`. */
export function shardFileName(shard: number, count: number): string {
  const digits = (n: number) => String(n).padStart(5, "0");
  return `model-${digits(shard)}-of-${digits(count)}.safetensors`;
}

/** Tensors in order, cut into shards as transformers cuts them: a new shard when the next tensor would overflow this one. */
export function planShards(tensors: readonly TensorLayout[], maxShardBytes: number): TensorLayout[][] {
  const shards: TensorLayout[][] = [];
  let bytes = 0;
  for (const tensor of tensors) {
    const size = byteLengthOf(tensor);
    const current = shards.at(-1);
    if (!current || bytes + size > maxShardBytes) {
      shards.push([tensor]);
      bytes = size;
    } else {
      current.push(tensor);
      bytes += size;
    }
  }
  return shards;
}

/**
 * `model.safetensors.index.json` as transformers' save_pretrained writes it: `metadata.total_size` and the
 * `weight_map`, keys sorted, two-space indent, a final newline. Object.fromEntries keeps a `__proto__` name as a key.
 */
function indexJson(totalSize: number, weightMap: ReadonlyArray<readonly [string, string]>): string {
  const sorted = [...weightMap].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: Object.fromEntries(sorted) }, null, 2)}\n`;
}

/**
 * Writes a sharded safetensors checkpoint (the Hub's layout: shards and their index) with the project's one
 * writer, shard by shard and tensor by tensor, so nothing larger than one tensor is held. Every shard reads back
 * as exactly its tensors (write.ts checks each header); a name twice across shards is refused before anything is
 * written, since the index could name only one of them.
 */
export async function writeShardedSafetensors(params: WriteShardsParams): Promise<WrittenShards> {
  const { pathOf, metadata, tensors, dataOf } = params;
  if (tensors.length === 0) throw new RangeError("a checkpoint needs at least one tensor");
  const names = new Set(tensors.map((tensor) => tensor.name));
  if (names.size !== tensors.length) {
    const twice = tensors.find((tensor, index) => tensors.findIndex((other) => other.name === tensor.name) !== index)!;
    throw new Error(`the checkpoint being written holds tensor ${JSON.stringify(twice.name)} twice; its index could name only one`);
  }
  const planned = planShards(tensors, params.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
  const shards = planned.map((_, index) => shardFileName(index + 1, planned.length));
  const weightMap: Array<[string, string]> = [];
  let totalSize = 0;
  for (const [index, part] of planned.entries()) {
    await writeSafetensorsFrom(pathOf(shards[index]!), metadata, part, dataOf);
    for (const tensor of part) {
      weightMap.push([tensor.name, shards[index]!]);
      totalSize += byteLengthOf(tensor);
    }
  }
  await writeChunks(pathOf(SHARD_INDEX), [new TextEncoder().encode(indexJson(totalSize, weightMap))]);
  return { shards, index: SHARD_INDEX, totalSize };
}
