import type { BotConfig, RepoConfig } from "../config/bot-config.js";
import type { ErrorFix } from "../errors.js";
import { code, codeBlock } from "../report/markdown.js";

export interface RepoAdviceContext {
  /** BOT_CONFIG's values: the operator's caps. */
  readonly operator: BotConfig;
  /** The repo's effective configuration, when its safe-lora.yaml was read before the error. */
  readonly repo: RepoConfig | null;
  readonly botName: string;
  /** The forge's configuration file (`safe-lora.yaml` on the Hub). */
  readonly configPath: string;
}

/** A `pair:` block to paste into safe-lora.yaml; the ids are Hub ids (checked), placeholders in angle brackets. */
function pairBlock(base: string, aligned: string): string {
  return codeBlock(`pair:\n  base: ${base}\n  aligned: ${aligned}`, "yaml");
}

const UNITS: Record<string, string> = { maxFetchGB: " GB", maxDiskGB: " GB", maxRunMinutes: " minutes" };

/**
 * What a repo owner does about an error, in the repo's own configuration (`safe-lora.yaml`, its
 * `adapter_config.json`) — a repo owner has no command-line flags. Markdown, for the bot's notices; the
 * same fixes in CLI flags are in src/cli/fix-advice.ts.
 */
export function repoAdvice(fix: ErrorFix, context: RepoAdviceContext): string {
  const FILE = code(context.configPath);
  switch (fix.kind) {
    case "name-aligned":
      return [
        `Name the pair in ${FILE} at the root of this repo (Hub ids of the chat/instruct model the adapter was trained on and of its unaligned base):`,
        "",
        pairBlock("<hub id of the unaligned base model>", "<hub id of the chat/instruct model it was trained on>"),
        "",
        `or set ${code("base_model_name_or_path")} in ${code("adapter_config.json")} to the Hub id of the model it was trained on.`,
      ].join("\n");
    case "name-base":
      return [
        `Name its unaligned base model in ${FILE} at the root of this repo:`,
        "",
        pairBlock("<hub id of the unaligned base model>", fix.aligned),
        ...(fix.modelTree === "off"
          ? ["", `Or set ${code("allowModelTree: true")} there to let ${code(fix.aligned)}'s model card choose the base (anyone who can edit that card could then choose it).`]
          : []),
      ].join("\n");
    case "name-pair-anyway":
      return [`To patch it anyway, name the pair in ${FILE} at the root of this repo:`, "", pairBlock("<hub id of the unaligned base model>", "<hub id of the aligned model>")].join("\n");
    case "unquantized":
      return [`Name the original (unquantized) release as the ${fix.role} model in ${FILE} at the root of this repo:`, "", pairBlock("<hub id>", "<hub id>")].join("\n");
    case "check-pair": {
      const pair = context.repo?.pair;
      const which = pair ? `the pair ${FILE} names (${code(pair.base)}, ${code(pair.aligned)})` : `the model ${code("adapter_config.json")}'s ${code("base_model_name_or_path")} names, or the ${code("pair:")} in ${FILE}`;
      return `Check that ${which} is the model family the adapter was trained on.`;
    }
    case "model-access": {
      const model = code(fix.model);
      const how = fix.reason === "gated" ? `the bot's account (${code(context.botName)}) has not been granted ${model}` : `the bot cannot read ${model}`;
      return `${how[0]!.toUpperCase()}${how.slice(1)}: name a pair it can read in ${FILE} (${code("pair: {base: …, aligned: …}")}), or ask the bot's operator to give its account access.`;
    }
    case "raise-limit": {
      const key = code(`limits.${fix.limit}`);
      const unit = UNITS[fix.limit] ?? "";
      const cap = context.operator.limits[fix.limit];
      const own = context.repo?.limits[fix.limit];
      if (own !== undefined && own < cap) {
        return `This repo's ${FILE} lowers ${key} to ${own}${unit}: raise it (this bot allows up to ${cap}${unit}) or remove it.`;
      }
      return `${key} (${cap}${unit}) is this bot's limit, set by its operator; a repo's ${FILE} can only lower it, so ask the bot's operator to raise it.`;
    }
    case "needs-gpu":
      return "A job of this size runs on a GPU worker only. The bot sends full fine-tunes whose config.json declares modules above its CPU cap to GPU workers; this one reached a CPU worker, so ask the bot's operator to run a GPU worker (`SAFE_LORA_EP=cuda safe-lora worker`) or to raise `fullFinetunes.maxCpuModuleElements` in BOT_CONFIG.";
  }
}
