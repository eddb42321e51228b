import type { SubspaceSource } from "../projection/projection-session.js";
import type { OpenedProvider } from "../projection/provider-loading.js";
import type { ModuleReport } from "../report/schema.js";
import type { AlignmentSources } from "./lora-method.js";
import type { ModuleSteps } from "./module-loop.js";

/** What a method hands to the report and the variant once every module is done. */
export interface AssembledVariant {
  readonly modules: readonly ModuleReport[];
  /** The effective threshold the selection came to (null when no module has a cosine). */
  readonly threshold: number | null;
  /** `__metadata__` of the variant's weights: the input's, plus provenance under `safe_lora.*`. */
  readonly metadata: Record<string, string>;
  /** The variant's weights file, written in the run's staging folder. */
  readonly weightsPath: string;
  /** The provider the projection ran on, and why better ones did not load (`auto`). */
  readonly provider: OpenedProvider;
  /** Hits (warm pairs or disk) and misses of the alignment cache, when a tier of it was used. */
  readonly alignmentCache: { readonly hits: number; readonly misses: number } | null;
  /** Modules by where their V came from. */
  readonly alignmentSources: AlignmentSources;
  /** Subspace operator only: modules by where their U_k came from (the thread's warm pairs, the disk cache, computed). */
  readonly subspaceSources?: Record<SubspaceSource, number>;
}

/**
 * One way of patching weights, in the four steps every method shares: a plan from headers alone, then per module
 * a read and a compute (pipelined by runModules: module i + 1 is read while module i is computed), then the
 * assembly of the variant from every module's outcome (`Assembled`: what the method's variant holds). LoRA adapters
 * are one method (lora-method.ts), full fine-tunes the other (full-method.ts), both run by runModules.
 */
export interface PatchMethod<Plan, Input, Outcome, Assembled = AssembledVariant> extends ModuleSteps<Plan, Input, Outcome> {
  /**
   * Checks everything that can be checked before a weight byte is read (names, shapes, dtypes, the job's limits),
   * opens the compute (an unavailable execution provider fails here) and returns one plan per module.
   */
  plan(): Promise<Plan[]>;
  /** Decides from every outcome what the variant holds and writes its weights into the staging folder. */
  assemble(outcomes: readonly Outcome[]): Promise<Assembled>;
  /** Releases what the method holds open (its staged intermediate files), whether the run succeeded or not. */
  close(): Promise<void>;
}
