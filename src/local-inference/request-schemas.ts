import { z } from "zod";
import { MAX_ADAPTER_ID_CHARS } from "./adapter-id.js";

/** A request body larger than this is refused (413) before it is parsed; real ones are a prompt and a few fields. */
export const MAX_REQUEST_BYTES = 256 * 1024;
export const MAX_PROMPT_CHARS = 16_000;
export const MAX_NEW_TOKENS = 1024;
/** TGI's default when a request names no max_new_tokens. */
export const DEFAULT_MAX_NEW_TOKENS = 100;
const MAX_STOP_SEQUENCES = 4;

const Prompt = z.string().min(1).max(MAX_PROMPT_CHARS);
const NewTokens = z.number().int().positive().max(MAX_NEW_TOKENS);
const AdapterName = z.string().max(MAX_ADAPTER_ID_CHARS);
const StopSequence = z.string().min(1).max(200);
const Stop = z.union([StopSequence, z.array(StopSequence).max(MAX_STOP_SEQUENCES)]);
// Unknown fields are ignored, as both servers' JSON parsers do: clients send more than this endpoint reads.

/** TGI's `POST /generate` and `POST /`: `{inputs, parameters}`. */
export const TgiGenerateRequest = z.looseObject({
  inputs: Prompt,
  parameters: z
    .looseObject({
      max_new_tokens: NewTokens.nullish(),
      adapter_id: AdapterName.nullish(),
      details: z.boolean().nullish(),
      stop: z.array(StopSequence).max(MAX_STOP_SEQUENCES).nullish(),
      do_sample: z.boolean().nullish(),
      return_full_text: z.boolean().nullish(),
    })
    .nullish(),
  stream: z.boolean().nullish(),
});
export type TgiGenerateRequest = z.infer<typeof TgiGenerateRequest>;

/**
 * `POST /v1/completions`. Besides OpenAI's fields it takes TGI's generation parameters at the top level, where
 * @huggingface/inference's textGeneration puts them (it flattens `parameters` and renames max_new_tokens).
 */
export const CompletionRequest = z.looseObject({
  model: z.string().max(MAX_ADAPTER_ID_CHARS).nullish(),
  prompt: z.union([Prompt, z.array(Prompt).length(1, "this endpoint completes one prompt per request")]),
  max_tokens: NewTokens.nullish(),
  temperature: z.number().nonnegative().nullish(),
  stop: Stop.nullish(),
  stream: z.boolean().nullish(),
  n: z.literal(1).nullish(),
  do_sample: z.boolean().nullish(),
  return_full_text: z.boolean().nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

const TextPart = z.looseObject({ type: z.literal("text"), text: z.string().max(MAX_PROMPT_CHARS) });
const ChatMessage = z.looseObject({
  role: z.string().min(1).max(50),
  content: z.union([z.string().max(MAX_PROMPT_CHARS), z.array(TextPart).max(64)]).nullish(),
});

/** `POST /v1/chat/completions`. */
export const ChatCompletionRequest = z.looseObject({
  model: z.string().max(MAX_ADAPTER_ID_CHARS).nullish(),
  messages: z.array(ChatMessage).min(1).max(64),
  max_tokens: NewTokens.nullish(),
  max_completion_tokens: NewTokens.nullish(),
  temperature: z.number().nonnegative().nullish(),
  stop: Stop.nullish(),
  stream: z.boolean().nullish(),
  n: z.literal(1).nullish(),
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

