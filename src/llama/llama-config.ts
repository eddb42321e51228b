import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import { inSubfolder, type RepoFiles } from "../storage/repo-files.js";

export const MODEL_CONFIG = "config.json";

/** Sizes above these are not a model this forward pass could hold in memory; the caps keep a hostile config from allocating. */
const dimension = z.number().int().positive().max(1 << 20);
const tokenId = z.number().int().nonnegative().max(1 << 24);

/**
 * transformers' LlamaConfig, as far as the forward pass needs it. Defaults are transformers' own; unknown keys
 * are kept (`looseObject`) since real configs carry many that change nothing at inference (dropout, init).
 * Values this forward pass does not implement are refused by `checkSupported`, never ignored.
 */
export const LlamaConfig = z.looseObject({
  model_type: z.literal("llama"),
  hidden_size: dimension,
  intermediate_size: dimension,
  num_hidden_layers: z.number().int().positive().max(1024),
  num_attention_heads: dimension,
  num_key_value_heads: dimension.nullish(),
  head_dim: dimension.nullish(),
  vocab_size: dimension,
  max_position_embeddings: dimension,
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(10000),
  rope_scaling: z.unknown().optional(),
  hidden_act: z.string().default("silu"),
  attention_bias: z.boolean().default(false),
  mlp_bias: z.boolean().default(false),
  tie_word_embeddings: z.boolean().default(false),
  eos_token_id: z.union([tokenId, z.array(tokenId).max(64)]).nullish(),
  pad_token_id: tokenId.nullish(),
});
export type LlamaConfig = z.infer<typeof LlamaConfig>;

/** The sizes the graph is built from, with transformers' derived defaults filled in. */
export interface LlamaShape {
  readonly hidden: number;
  readonly intermediate: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly vocab: number;
  readonly maxPositions: number;
}

export function llamaShape(config: LlamaConfig): LlamaShape {
  return {
    hidden: config.hidden_size,
    intermediate: config.intermediate_size,
    layers: config.num_hidden_layers,
    heads: config.num_attention_heads,
    kvHeads: config.num_key_value_heads ?? config.num_attention_heads,
    headDim: config.head_dim ?? config.hidden_size / config.num_attention_heads,
    vocab: config.vocab_size,
    maxPositions: config.max_position_embeddings,
  };
}

/** The token ids that end a generation: every eos id and the pad id. */
export function stopTokenIds(config: LlamaConfig): Set<number> {
  const eos = config.eos_token_id;
  const ids = eos === null || eos === undefined ? [] : Array.isArray(eos) ? eos : [eos];
  return new Set(config.pad_token_id === null || config.pad_token_id === undefined ? ids : [...ids, config.pad_token_id]);
}

/** Refuses what this forward pass would compute differently from transformers, naming the key and its value. */
function checkSupported(config: LlamaConfig, where: string): void {
  const refuse = (what: string) => {
    throw new SafeLoraError(`${where}: ${what}; the local forward pass implements plain Llama only, so it would not compute what transformers does`, "invalid-model-config");
  };
  if (config.rope_scaling !== undefined && config.rope_scaling !== null) refuse(`rope_scaling is set (${JSON.stringify(config.rope_scaling).slice(0, 200)}), which is not supported`);
  if (config.hidden_act !== "silu") refuse(`hidden_act is ${JSON.stringify(config.hidden_act)}, not "silu"`);
  if (config.attention_bias) refuse("attention_bias is true (biased q/k/v/o projections are not supported)");
  if (config.mlp_bias) refuse("mlp_bias is true (biased MLP projections are not supported)");
  const shape = llamaShape(config);
  if (shape.heads % shape.kvHeads !== 0) refuse(`num_attention_heads (${shape.heads}) is not a multiple of num_key_value_heads (${shape.kvHeads})`);
  if (!Number.isInteger(shape.headDim) || shape.headDim % 2 !== 0) refuse(`the head dimension is ${shape.headDim}; rotary embeddings need an even whole number`);
  const ids = [...stopTokenIds(config)];
  const outside = ids.find((id) => id >= shape.vocab);
  if (outside !== undefined) refuse(`token id ${outside} (eos_token_id or pad_token_id) is not below vocab_size ${shape.vocab}`);
}

/** The JSON of a model file (config.json, vocab.json) from `where`; text that is not JSON is the model's fault. */
export function parseModelJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new SafeLoraError(`${where} is not JSON (${(error as Error).message})`, "invalid-model-config", { cause: error });
  }
}

/** Parses `config` (the JSON text of config.json from `where`) and refuses values the forward pass does not implement. */
export function parseLlamaConfig(text: string, where: string): LlamaConfig {
  const parsed = LlamaConfig.safeParse(parseModelJson(text, where));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue ? `${issue.path.map(String).join(".") || "(root)"}: ${issue.message}` : "it does not match transformers' LlamaConfig";
    throw new SafeLoraError(`${where} is not a Llama config this forward pass can run (${at}); it needs model_type "llama" and transformers' size keys`, "invalid-model-config");
  }
  checkSupported(parsed.data, where);
  return parsed.data;
}

/** Reads and parses `config.json` from `folder` of `files`. */
export async function readLlamaConfig(files: RepoFiles, folder: string): Promise<LlamaConfig> {
  const path = inSubfolder(folder, MODEL_CONFIG);
  if (!(await files.exists(path))) {
    throw new SafeLoraError(`${files.description} has no ${path}: point at a transformers model folder (config.json and model.safetensors)`, "missing-file");
  }
  return parseLlamaConfig(await files.readText(path), `${files.description}/${path}`);
}
