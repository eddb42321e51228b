import { z } from "zod";

/** One tensor entry of a safetensors header. Offsets are relative to the start of the data section. */
export const TensorEntry = z.strictObject({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});
export type TensorEntry = z.infer<typeof TensorEntry>;

/** `__metadata__`: the format allows string values only. */
export type HeaderMetadata = Record<string, string>;

/**
 * `__metadata__` as its entries: validating the entries rather than the object keeps every key, while a zod
 * record drops a `__proto__` key.
 */
export const MetadataEntries = z.array(z.tuple([z.string(), z.string()]));

/** `model.safetensors.index.json` of a sharded checkpoint. */
export const ShardIndex = z.looseObject({
  metadata: z.looseObject({}).optional(),
  weight_map: z.record(z.string(), z.string().min(1)),
});
export type ShardIndex = z.infer<typeof ShardIndex>;
