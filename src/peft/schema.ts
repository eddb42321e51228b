import { z } from "zod";

/**
 * PEFT's `adapter_config.json` for LoRA, as far as Safe LoRA needs to understand it. Unknown keys are kept
 * (`looseObject`) so that a patched adapter's config is the input's config, not our idea of it.
 */
export const AdapterConfig = z.looseObject({
  peft_type: z.string(),
  r: z.number().int().positive().optional(),
  lora_alpha: z.number().optional(),
  /** A list of module-name suffixes, or one regex matched against full module names. */
  target_modules: z.union([z.array(z.string()), z.string()]).nullish(),
  rank_pattern: z.record(z.string(), z.number().int().positive()).nullish(),
  alpha_pattern: z.record(z.string(), z.number()).nullish(),
  layers_to_transform: z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).nullish(),
  use_dora: z.boolean().nullish(),
  fan_in_fan_out: z.boolean().nullish(),
  modules_to_save: z.array(z.string()).nullish(),
  base_model_name_or_path: z.string().nullish(),
});
export type AdapterConfig = z.infer<typeof AdapterConfig>;
