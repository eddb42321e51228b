import type { Logger } from "pino";
import type { BotConfig } from "../config/bot-config.js";
import type { Forge, ForgeRegistry } from "../forge/forge.js";
import type { HubAccess } from "../hub/hub-access.js";
import type { AlignmentCache } from "../projection/alignment-cache.js";
import type { ExecutionProviderChoice } from "../projection/execution-provider.js";
import type { BotMemory } from "../queue/bot-memory.js";
import type { JobQueue } from "../queue/job-queue.js";
import type { BehaviourSetup } from "./behaviour-check.js";
import type { BotMetrics } from "./metrics.js";

/** Everything the bot's jobs share, wired once by the composition root (src/app/). */
export interface BotContext {
  /** The forges served; each job and event names its repo's. */
  readonly forges: ForgeRegistry;
  /** Where base and aligned models are read from (the Hub, whatever forge holds the adapter). */
  readonly hub: HubAccess;
  readonly queue: JobQueue;
  /** What the bot remembers that the forge cannot hold for it (stopped adapters, covered owners). */
  readonly memory: BotMemory;
  readonly config: BotConfig;
  readonly cache: AlignmentCache | null;
  /** V of recently used pairs kept in this process between jobs (SAFE_LORA_WARM_PAIRS_MB); null: off. */
  readonly warmPairs: { readonly maxBytes: number } | null;
  readonly executionProvider: ExecutionProviderChoice;
  /** The behavioural check's prompt set and endpoint tokens (BOT_CONFIG inferenceEndpoints, behaviourPromptSet). */
  readonly behaviour: BehaviourSetup;
  readonly log: Logger;
  readonly metrics: BotMetrics;
}

/** What one job (or one repo's work) runs with: the bot's context and the forge its repo lives on. */
export interface JobContext extends BotContext {
  readonly forge: Forge;
}

/** The context for work on a repo of `forge`. */
export function onForge(context: BotContext, forge: Forge): JobContext {
  return { ...context, forge };
}
