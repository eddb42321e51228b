import { createHash } from "node:crypto";
import type { BehaviourPrompts } from "../report/behaviour-schema.js";
import type { PromptSet, TaskPrompt } from "./schema.js";

/** Everything the check asks each model, in the order it is asked, and how long an answer may be. */
export interface AskedPrompts {
  /** The prompt set's name. */
  readonly set: string;
  readonly harmful: readonly { readonly category: string; readonly prompt: string }[];
  readonly benign: readonly string[];
  /** The set's task prompts, then the repo's own. */
  readonly task: readonly TaskPrompt[];
  readonly maxNewTokens: number;
}

/** What the check asks: the prompt set's prompts with the repo's task prompts after the set's own. */
export function askedPrompts(set: PromptSet, repoTask: readonly TaskPrompt[], maxNewTokens: number): AskedPrompts {
  return { set: set.name, harmful: set.harmful, benign: set.benign, task: [...(set.task ?? []), ...repoTask], maxNewTokens };
}

/**
 * sha256 of the canonical JSON of what was asked: keys in a fixed order, prompts in the order asked, the expected
 * task answers (they decide the task score) and the decoding setting. Two reports with the same hash asked the same.
 * Categories are left out: they are labels, not part of what a model was asked.
 */
export function askedPromptsSha256(asked: AskedPrompts): string {
  const canonical = JSON.stringify({
    set: asked.set,
    maxNewTokens: asked.maxNewTokens,
    harmful: asked.harmful.map((item) => item.prompt),
    benign: asked.benign,
    task: asked.task.map((item) => ({ prompt: item.prompt, expected: item.expected })),
  });
  return createHash("sha256").update(canonical).digest("hex");
}

/** What the report says of the prompts: counts and the hash, never the harmful prompts themselves. */
export function describeAskedPrompts(asked: AskedPrompts): BehaviourPrompts {
  return {
    set: asked.set,
    sha256: askedPromptsSha256(asked),
    harmful: asked.harmful.length,
    benign: asked.benign.length,
    task: asked.task.length,
    categories: new Set(asked.harmful.map((item) => item.category)).size,
    maxNewTokens: asked.maxNewTokens,
  };
}
