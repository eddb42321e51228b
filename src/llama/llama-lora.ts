import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import { baseWeightCandidates } from "../peft/lora-modules.js";
import { ADAPTER_CONFIG, openAdapter, type OpenedAdapter } from "../peft/open-adapter.js";
import { decodeToFloat32 } from "../safetensors/dtype.js";
import { REPO_ROOT, type RepoFiles } from "../storage/repo-files.js";
import type { LlamaShape } from "./llama-config.js";
import { loraInputNames, type LoraSlot } from "./llama-graph.js";
import { adaptableWeights } from "./llama-weights.js";

/** PEFT's LoRA default when a config has no lora_alpha. */
const PEFT_DEFAULT_ALPHA = 8;

/** The keys of adapter_config.json that decide how the update is scaled and what else the adapter changes. */
const LoraScaling = z.looseObject({
  lora_alpha: z.number().finite().optional(),
  alpha_pattern: z.record(z.string(), z.number().finite()).nullish(),
  use_rslora: z.boolean().nullish(),
  bias: z.string().nullish(),
  modules_to_save: z.array(z.string()).nullish(),
});
type LoraScaling = z.infer<typeof LoraScaling>;

/** A LoRA adapter ready to feed to the graph: which weights it adapts, with what scale, and the factors as fp32 inputs. */
export interface LoadedLora {
  readonly description: string;
  readonly slots: readonly LoraSlot[];
  /** Graph input name (loraInputNames) → factor, [r, d_in] for A and [d_out, r] for B. */
  readonly factors: ReadonlyMap<string, Float32Array>;
}

/** PEFT matches a pattern key against the module's name (without the `base_model.model.` wrapper) as a dotted suffix. */
function patternValue(pattern: Record<string, number> | null | undefined, moduleName: string): number | undefined {
  const name = moduleName.replace(/^base_model\.model\./, "");
  const key = Object.keys(pattern ?? {}).find((key) => name === key || name.endsWith(`.${key}`));
  return key === undefined ? undefined : pattern![key];
}

/**
 * Opens a PEFT LoRA adapter for a Llama model of `shape`, refusing what the forward pass would not apply as PEFT
 * does: modules other than the blocks' linear layers, factor shapes that do not fit the weight, trained biases
 * and `modules_to_save` (whole modules replaced). openAdapter already refuses DoRA, fan_in_fan_out and non-LoRA
 * methods. The scale is PEFT's: lora_alpha (or its alpha_pattern entry) / r, or / √r with use_rslora.
 */
export async function loadLlamaLora(files: RepoFiles, folder: string, shape: LlamaShape): Promise<LoadedLora> {
  const adapter = await openAdapter(files, folder);
  const where = `${files.description}${adapter.subfolder === REPO_ROOT ? "" : `/${adapter.subfolder}`}`;
  try {
    return await readFactors(adapter, where, shape, checkScaling(adapter, where));
  } finally {
    await adapter.weights.close();
  }
}

/** The config's scaling keys, once it is clear the adapter holds nothing but LoRA factors. */
function checkScaling(adapter: OpenedAdapter, where: string): LoraScaling {
  const parsed = LoraScaling.safeParse(adapter.config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SafeLoraError(`${where}/${ADAPTER_CONFIG}: ${issue?.path.map(String).join(".")}: ${issue?.message}`, "invalid-adapter-config");
  }
  const scaling = parsed.data;
  if (scaling.bias && scaling.bias !== "none") {
    throw new SafeLoraError(`${where} trains biases (bias: ${JSON.stringify(scaling.bias)}); the local forward pass applies LoRA factors only`, "unsupported-adapter");
  }
  if (scaling.modules_to_save?.length || adapter.untouched.length > 0) {
    const what = scaling.modules_to_save?.length ? `modules_to_save ${JSON.stringify(scaling.modules_to_save)}` : `tensor "${adapter.untouched[0]}"`;
    throw new SafeLoraError(`${where} holds more than LoRA factors (${what}); the local forward pass applies lora_A/lora_B pairs only`, "unsupported-adapter");
  }
  return scaling;
}

async function readFactors(adapter: OpenedAdapter, where: string, shape: LlamaShape, scaling: LoraScaling): Promise<LoadedLora> {
  const adaptable = adaptableWeights(shape);
  const slots: LoraSlot[] = [];
  const factors = new Map<string, Float32Array>();
  for (const module of adapter.modules) {
    const weight = baseWeightCandidates(module.name).find((candidate) => adaptable.has(candidate));
    if (weight === undefined) {
      throw new SafeLoraError(
        `${where} adapts "${module.name}", which is not one of this model's attention or MLP linear layers (q/k/v/o_proj, gate/up/down_proj of layers 0–${shape.layers - 1}); the local forward pass cannot apply it`,
        "unsupported-adapter",
      );
    }
    if (slots.some((slot) => slot.weight === weight)) {
      throw new SafeLoraError(`${where} adapts "${weight}" twice (the last one as "${module.name}"); save one adapter per file`, "unsupported-adapter");
    }
    const [dOut, dIn] = adaptable.get(weight)!;
    const a = adapter.weights.info(module.loraAKey);
    const b = adapter.weights.info(module.loraBKey);
    const rank = a.shape[0]!;
    if (a.shape[1] !== dIn || b.shape[0] !== dOut) {
      throw new SafeLoraError(
        `${where}: module "${module.name}" has lora_A [${a.shape}] and lora_B [${b.shape}], which do not fit its weight [${dOut}, ${dIn}] (lora_A must be [r, ${dIn}], lora_B [${dOut}, r]); the adapter was trained for another model`,
        "shape-mismatch",
      );
    }
    const alpha = patternValue(scaling.alpha_pattern, module.name) ?? scaling.lora_alpha ?? PEFT_DEFAULT_ALPHA;
    const scale = scaling.use_rslora ? alpha / Math.sqrt(rank) : alpha / rank;
    slots.push({ weight, rank, scale, dOut, dIn });
    const names = loraInputNames(weight);
    factors.set(names.a, decodeToFloat32(await adapter.weights.readBytes(module.loraAKey), a.dtype));
    factors.set(names.b, decodeToFloat32(await adapter.weights.readBytes(module.loraBKey), b.dtype));
  }
  return { description: where, slots, factors };
}
