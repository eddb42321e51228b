import type { z } from "zod";
import type { Forge } from "../forge/forge.js";
import { commandJob } from "./command-job.js";
import { finetuneJob } from "./finetune-job.js";
import type { BotContext } from "./context.js";
import { patchJob } from "./patch-job.js";
import { scanJob } from "./scan-job.js";

/** One job as its kind's `run` sees it: the stored payload already checked against the kind's schema. */
export interface RunnableJob<P> {
  readonly id: string;
  /** The forge the job's repo lives on. */
  readonly forge: Forge;
  readonly repo: string;
  readonly private: boolean;
  /** 1 on the first run, more on retries. */
  readonly attempts: number;
  readonly payload: P;
  /** A newer job of the same supersedes group (a later re-patch of the same folder) stored before this one started. */
  readonly supersededBy: string | null;
  /** Aborted when the job must stop: its lease was lost, or it ran past the operator's time limit. */
  readonly signal: AbortSignal;
}

/**
 * What the bot knows about one kind of job: the schema its stored payload must pass and how to run it.
 * A new kind is one new file exporting its definition, plus one line in JOB_KINDS.
 */
export interface JobKindDefinition<P> {
  readonly kind: string;
  readonly payload: z.ZodType<P>;
  run(context: BotContext, job: RunnableJob<P>): Promise<unknown>;
}

/** Every kind the bot runs; a stored job of any other kind fails as damaged. */
export const JOB_KINDS: readonly JobKindDefinition<unknown>[] = [scanJob, patchJob, finetuneJob, commandJob];

/** The definition of a stored job's kind, or null when the bot has no such kind. */
export function jobKind(kind: string): JobKindDefinition<unknown> | null {
  return JOB_KINDS.find((definition) => definition.kind === kind) ?? null;
}
