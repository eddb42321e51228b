import { chatCompletion, textGeneration } from "@huggingface/inference";
import { z } from "zod";
import { cappedFetch } from "./capped-fetch.js";
import { classifyEndpointError, EndpointProblem } from "./endpoint-problem.js";
import type { InferenceEndpointConfig } from "./schema.js";

/** The most of one answer the check keeps: scoring needs its first words, and the bot keeps every answer in memory. */
export const MAX_ANSWER_CHARS = 8 * 1024;
/** The most of one response read (the answer with the protocol's wrapping: ids, usage, logprobs). */
export const MAX_RESPONSE_BYTES = 1024 * 1024;

/** An endpoint as the check asks it. */
export interface EndpointAccess {
  /** The operator's name for it (BOT_CONFIG `inferenceEndpoints.<name>`): what messages say instead of its URL. */
  readonly name: string;
  readonly config: InferenceEndpointConfig;
  /** The value of the variable the config's `tokenEnv` names; null without one. Never passed without `tokenEnv`. */
  readonly token: string | null;
  /** Injectable for tests; the global fetch otherwise. */
  readonly fetch?: typeof fetch;
}

export interface AskEndpointParams {
  readonly endpoint: EndpointAccess;
  /** The adapter the endpoint is asked to apply (`org/name@<commit>[/<folder>]`), or null for the model alone. */
  readonly adapterId: string | null;
  readonly prompt: string;
  /** The whole check's signal: aborting it aborts the request, and its reason is thrown. */
  readonly signal?: AbortSignal;
}

/** The `model` TGI's OpenAI-compatible routes read as "no adapter" (any other value is an adapter id). */
export const TGI_MODEL_ALONE = "tgi";

const TextGenerationAnswer = z.object({ generated_text: z.string() });
const ChatAnswer = z.object({ choices: z.array(z.object({ message: z.object({ content: z.string().nullable() }) })).min(1) });

function parseAnswer<T>(schema: z.ZodType<T>, response: unknown, endpoint: string): T {
  const parsed = schema.safeParse(response);
  if (!parsed.success) throw new EndpointProblem(`endpoint "${endpoint}" sent an answer that is not the protocol's`, "invalid-answer");
  return parsed.data;
}

/**
 * Asks an endpoint for one greedy answer to `prompt`, through @huggingface/inference: `tgi` with `textGeneration`
 * (the adapter id as `model`, `tgi` for none), `openai` with `chatCompletion` (the adapter id as the model name). Returns the
 * answer cut at MAX_ANSWER_CHARS. Throws an EndpointProblem for anything of the endpoint's doing (HTTP errors,
 * timeouts, unreachable, answers of the wrong shape), the signal's reason when the check is aborted, and anything
 * else as the bug it is.
 */
export async function askEndpoint(params: AskEndpointParams): Promise<string> {
  const { endpoint, adapterId, prompt } = params;
  const { config } = endpoint;
  if (endpoint.token !== null && config.tokenEnv === undefined) {
    // The client would send it to whatever URL the config holds: only a token the operator named for it may go there.
    throw new Error(`askEndpoint: a token was given for endpoint "${endpoint.name}", whose config names no tokenEnv`);
  }
  const accessToken = endpoint.token ?? undefined;
  const requestTimeout = AbortSignal.timeout(config.requestTimeoutSeconds * 1000);
  const signal = params.signal ? AbortSignal.any([params.signal, requestTimeout]) : requestTimeout;
  // No retry: the library retries a 503 without end, past every timeout but the signal's.
  const options = { retry_on_error: false, signal, fetch: cappedFetch(MAX_RESPONSE_BYTES, endpoint.fetch) };
  try {
    let answer: string;
    if (config.protocol === "tgi") {
      // The 4.x client posts textGeneration to `<url>/v1/completions`, where TGI takes the adapter from `model` and
      // serves the model alone for `tgi`; a top-level adapter_id is not read there. temperature 0 is greedy on that route.
      const parameters = { max_new_tokens: config.maxNewTokens, temperature: 0 };
      const response = await textGeneration({ endpointUrl: config.url, accessToken, model: adapterId ?? TGI_MODEL_ALONE, inputs: prompt, parameters }, options);
      answer = parseAnswer(TextGenerationAnswer, response, endpoint.name).generated_text;
    } else {
      const model = adapterId ?? config.model;
      if (model === undefined) {
        throw new EndpointProblem(`endpoint "${endpoint.name}" (openai) names no model to ask without an adapter: set its model in BOT_CONFIG`, "unsupported");
      }
      const messages = [{ role: "user", content: prompt }];
      const response: unknown = await chatCompletion({ endpointUrl: config.url, accessToken, model, messages, max_tokens: config.maxNewTokens, temperature: 0 }, options);
      const content = parseAnswer(ChatAnswer, response, endpoint.name).choices[0]!.message.content;
      if (content === null) throw new EndpointProblem(`endpoint "${endpoint.name}" sent an answer without content`, "invalid-answer");
      answer = content;
    }
    return answer.slice(0, MAX_ANSWER_CHARS);
  } catch (error) {
    if (params.signal?.aborted) throw params.signal.reason;
    if (requestTimeout.aborted) {
      throw new EndpointProblem(`endpoint "${endpoint.name}" did not answer a request within ${config.requestTimeoutSeconds} s`, "timeout", { cause: error });
    }
    const problem = classifyEndpointError(error, endpoint.name);
    if (problem) throw problem;
    throw error;
  }
}
