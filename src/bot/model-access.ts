import picomatch from "picomatch";
import { SafeLoraError } from "../errors.js";
import type { HubAccess } from "../hub/hub-access.js";
import { isPublicModel } from "../hub/public-model.js";

export interface ModelAccessRule {
  /** The repo the adapter lives in: its owner's models may be read for it. */
  readonly adapterRepo: string;
  /** BOT_CONFIG `trustedModels`: globs of model ids the operator lets any covered repo use. */
  readonly trustedModels: readonly string[];
  readonly hub: HubAccess;
}

const ownerOf = (id: string) => id.split("/")[0]!.toLowerCase();

/**
 * The bot's rule for base and aligned models (README "Security model"): it reads one for an adapter only
 * when the model is public, belongs to the adapter repo's owner, or is trusted by the operator. Without it,
 * a `pair:` or `base_model_name_or_path` naming another organisation's private model would have the bot
 * read that model with its own token and publish figures derived from it. Nothing in a repo widens the
 * rule. The refusal reads the same for a private model and a missing one, so it confirms nothing.
 */
export function modelAccessCheck(rule: ModelAccessRule): (id: string) => Promise<void> {
  const trusted = rule.trustedModels.length > 0 ? picomatch([...rule.trustedModels], { nocase: true }) : () => false;
  const allowed = new Map<string, Promise<boolean>>();
  return async (id) => {
    let verdict = allowed.get(id);
    if (!verdict) {
      verdict = ownerOf(id) === ownerOf(rule.adapterRepo) || trusted(id) ? Promise.resolve(true) : isPublicModel(rule.hub, id);
      allowed.set(id, verdict);
      verdict.catch(() => allowed.delete(id));
    }
    if (await verdict) return;
    const owner = rule.adapterRepo.split("/")[0]!;
    throw new SafeLoraError(
      `${id} is not a public model (or does not exist), and it is not ${owner}'s: this bot reads only public models, models of the adapter's owner, ` +
        `and models its operator trusts. Name a public base/aligned pair (pair: in safe-lora.yaml), keep the models in ${owner}, ` +
        `or ask the bot's operator to add ${id} to trustedModels in BOT_CONFIG`,
      "model-not-allowed",
    );
  };
}
