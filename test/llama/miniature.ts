import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

/** The miniature model family (test/fixtures/miniature/README.md): a real Llama checkpoint, its adapters and what PyTorch computed. */
export const MINIATURE = join(import.meta.dirname, "..", "fixtures", "miniature");

export const PROMPT_KINDS = ["harmful", "benign", "task"] as const;
const ByKind = z.object({ harmful: z.array(z.string()), benign: z.array(z.string()), task: z.array(z.string()) });

const Reference = z.object({
  prompts: ByKind,
  decoding: z.string(),
  results: z.record(z.string(), z.object({ generations: ByKind })),
  logit_probes: z.object({ prompts: z.array(z.string()), last_position_logits: z.record(z.string(), z.array(z.array(z.number()))) }),
});
export type Reference = z.infer<typeof Reference>;

export function readReference(): Reference {
  return Reference.parse(JSON.parse(readFileSync(join(MINIATURE, "reference.json"), "utf8")));
}

/** The decoding rule's numbers from reference.json's words ("… or 40 new characters, or 64 positions in all"). */
export function decodingLimits(reference: Reference): { maxNewTokens: number; maxPositions: number } {
  const newTokens = /(\d+) new characters/.exec(reference.decoding);
  const positions = /(\d+) positions/.exec(reference.decoding);
  if (!newTokens || !positions) throw new Error(`reference.json's decoding rule changed: ${reference.decoding}`);
  return { maxNewTokens: Number(newTokens[1]), maxPositions: Number(positions[1]) };
}
