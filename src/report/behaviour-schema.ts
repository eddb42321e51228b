import { z } from "zod";

/**
 * Measured behaviour of one model the check asked: the original adapter, or the patched variant. Scores are shares
 * in [0, 1]; null when that prompt kind was not asked (e.g. no task prompts configured).
 */
export const BehaviourScores = z.object({
  /** Share of harmful prompts refused (by the prompt set's refusal markers: the paper's keyword metric, 1 − ASR). */
  harmfulRefused: z.number().min(0).max(1).nullable(),
  /** Share of benign prompts answered: containing one of the set's answer markers when it has them, else not refused. */
  benignAnswered: z.number().min(0).max(1).nullable(),
  /** Share of the repo's task prompts answered exactly as expected. */
  taskAccuracy: z.number().min(0).max(1).nullable(),
  /** Mean harmfulness a judge model gave the answers to the harmful prompts (1 harmless … 5 harmful); absent without a judge. */
  judgeHarmfulness: z.number().min(1).max(5).nullable().optional(),
});
export type BehaviourScores = z.infer<typeof BehaviourScores>;

/** One model the check asked, as the endpoint was asked for it. */
export const BehaviourSubject = z.object({
  role: z.enum(["original", "patched"]),
  /** The id the endpoint was asked for (`org/name@<commit>[/<folder>]`); the repo name is redacted for private repos. */
  adapterId: z.string(),
  /** The commit the adapter files were read at by the endpoint. */
  revision: z.string(),
  scores: BehaviourScores,
});
export type BehaviourSubject = z.infer<typeof BehaviourSubject>;

/** What was asked: counts and a hash, never the harmful prompts themselves. */
export const BehaviourPrompts = z.object({
  /** The prompt set's name, e.g. `safe-lora-default` or the operator's own. */
  set: z.string(),
  /** sha256 (hex) of the canonical JSON of every prompt asked (harmful, benign, task) and the decoding settings. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  harmful: z.number().int().nonnegative(),
  benign: z.number().int().nonnegative(),
  task: z.number().int().nonnegative(),
  /** Harm categories the harmful prompts span (of the paper's 11). */
  categories: z.number().int().nonnegative(),
  maxNewTokens: z.number().int().positive(),
});
export type BehaviourPrompts = z.infer<typeof BehaviourPrompts>;

/** The endpoint as the public may see it: the operator's name for it and its protocol, never its URL (host detail). */
export const BehaviourEndpoint = z.object({
  name: z.string(),
  protocol: z.enum(["tgi", "openai"]),
});
export type BehaviourEndpoint = z.infer<typeof BehaviourEndpoint>;

/**
 * `behaviour` in `safe-lora-report.json`: what the behavioural check measured, or why it could not. The weights-only
 * report stands either way; this is evidence beside it, not part of the patch's record.
 */
export const BehaviourEvidence = z.discriminatedUnion("status", [
  z.object({
    status: z.literal("measured"),
    endpoint: BehaviourEndpoint,
    prompts: BehaviourPrompts,
    subjects: z.array(BehaviourSubject).min(1),
    measuredAt: z.string(),
    durationMs: z.number().nonnegative(),
  }),
  z.object({
    status: z.literal("not-measured"),
    endpoint: BehaviourEndpoint,
    /** One line: what could not be measured and why (timeout, rate limit, endpoint error), without secrets or URLs. */
    reason: z.string(),
    /** timeout, rate-limited, endpoint-error, unsupported (e.g. the endpoint cannot load the adapter), invalid-answer. */
    code: z.enum(["timeout", "rate-limited", "endpoint-error", "unsupported", "invalid-answer"]),
    measuredAt: z.string(),
  }),
]);
export type BehaviourEvidence = z.infer<typeof BehaviourEvidence>;
