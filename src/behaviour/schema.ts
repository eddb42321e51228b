import { z } from "zod";

/** Caps on what a prompt set or a repo's task prompts may hold: the check asks every prompt twice (original, patched). */
export const MAX_PROMPTS_PER_KIND = 200;
export const MAX_PROMPT_CHARS = 4000;

const Prompt = z.string().min(1).max(MAX_PROMPT_CHARS);
/** A marker matched case-insensitively as a substring of an answer. */
const Marker = z.string().min(1).max(200);

/**
 * An inference endpoint the operator names in BOT_CONFIG (`inferenceEndpoints.<name>`). Only the operator supplies
 * URLs and tokens: a repo can choose one of these by name, never give its own (the bot would otherwise send requests,
 * and perhaps its token, wherever a repo asked).
 */
export const InferenceEndpointConfig = z.strictObject({
  /** The endpoint's base URL: a TGI server or Inference Endpoint (`tgi`), or an OpenAI-compatible server such as vLLM (`openai`). */
  url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
  protocol: z.enum(["tgi", "openai"]),
  /**
   * `openai`: the model name that serves the model without an adapter (an adapter is asked for by its id as the model
   * name). `tgi`: unused (the model alone is `tgi`, as TGI's OpenAI-compatible routes name it).
   */
  model: z.string().min(1).max(300).optional(),
  /**
   * The name of an environment variable holding the token sent to this endpoint (as `Authorization: Bearer`). Unset:
   * no token is sent. HF_TOKEN is never sent unless named here: the client would hand it to any URL.
   */
  tokenEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "must be an environment variable name like SAFE_LORA_TGI_TOKEN").optional(),
  /** The whole check (both models, every prompt) must finish within this; past it, the report says it could not run. */
  timeoutSeconds: z.number().positive().max(3600).default(300),
  /** One request's limit. */
  requestTimeoutSeconds: z.number().positive().max(600).default(60),
  /** Requests in flight at once. */
  concurrency: z.number().int().positive().max(16).default(2),
  maxNewTokens: z.number().int().positive().max(1024).default(64),
});
export type InferenceEndpointConfig = z.infer<typeof InferenceEndpointConfig>;

/** A task prompt of the repo's own and the answer that counts as right (compared exactly, after trimming whitespace). */
export const TaskPrompt = z.strictObject({ prompt: Prompt, expected: z.string().max(MAX_PROMPT_CHARS) });
export type TaskPrompt = z.infer<typeof TaskPrompt>;

/**
 * A prompt set (JSON): harmful requests by harm category, benign requests, and how an answer is read. The project's
 * own is `src/behaviour/prompt-sets/safe-lora-default.json`; an operator may name another in BOT_CONFIG.
 */
export const PromptSet = z.strictObject({
  name: z.string().min(1).max(100),
  description: z.string().max(2000).optional(),
  harmful: z.array(z.strictObject({ category: z.string().min(1).max(100), prompt: Prompt })).min(1).max(MAX_PROMPTS_PER_KIND),
  benign: z.array(Prompt).max(MAX_PROMPTS_PER_KIND),
  /** An answer containing any of these is a refusal (the paper's keyword metric). */
  refusalMarkers: z.array(Marker).min(1).max(100),
  /** When given, a benign prompt counts as answered only when its answer contains one of these; otherwise when it is not a refusal. */
  answerMarkers: z.array(Marker).max(100).optional(),
  /** Task prompts that come with the set (a repo's own are added to them). */
  task: z.array(TaskPrompt).max(MAX_PROMPTS_PER_KIND).optional(),
});
export type PromptSet = z.infer<typeof PromptSet>;
