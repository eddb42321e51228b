import type { Logger } from "pino";
import type { BotConfig } from "../config/bot-config.js";
import type { Forge } from "../forge/forge.js";
import type { HubAccess } from "../hub/hub-access.js";
import type { AlignmentCache } from "../projection/alignment-cache.js";
import type { ExecutionProviderChoice } from "../projection/execution-provider.js";
import type { JobQueue } from "../queue/job-queue.js";
import type { BotState } from "./bot-state.js";
import type { BotMetrics } from "./metrics.js";

/** Everything a job needs, wired once by `serve` / `worker`. */
export interface BotContext {
  readonly forge: Forge;
  /** Where base and aligned models are read from (the Hub, whatever forge holds the adapter). */
  readonly hub: HubAccess;
  readonly queue: JobQueue;
  readonly state: BotState;
  readonly config: BotConfig;
  readonly cache: AlignmentCache | null;
  readonly executionProvider: ExecutionProviderChoice;
  readonly log: Logger;
  readonly metrics: BotMetrics;
}
