import { randomUUID } from "node:crypto";
import { SafeLoraError } from "../errors.js";
import { parseAdapterId } from "./adapter-id.js";
import { checkGreedy, checkNotStreaming, invalid, readJson, sendJson, type Exchange } from "./exchange.js";
import type { GenerationResult } from "./model-runner.js";
import { InferenceHttpError } from "./protocol-errors.js";
import { ChatCompletionRequest, CompletionRequest, DEFAULT_MAX_NEW_TOKENS, type ChatCompletionRequest as ChatBody } from "./request-schemas.js";

/**
 * The adapter an OpenAI-style `model` names. The model alone: no model, the served model's name, or TGI's
 * placeholder `tgi`. Anything else must be an adapter id, as on TGI (which would try to load the endpoint URL that
 * @huggingface/inference sends as `model` when given none); on vLLM a name that cannot be one is a model that does
 * not exist (404).
 */
function openAiAdapterId(exchange: Exchange, model: string | null | undefined): string | null {
  if (!model || model === exchange.modelId) return null;
  if (exchange.flavour === "tgi" && model === "tgi") return null;
  if (exchange.flavour === "vllm") {
    try {
      parseAdapterId(model);
    } catch (error) {
      if (error instanceof SafeLoraError) throw new InferenceHttpError(404, "not-found", `The model \`${model.slice(0, 200)}\` does not exist. ${error.message}`);
      throw error;
    }
  }
  return model;
}

/**
 * The prompt of a chat: the miniature models are char-level with no chat template, so the system and user
 * messages' texts are concatenated in order (a system message is kept, as dropping it would change the answer
 * unseen). Assistant and tool turns are refused: without a template a multi-turn chat has no faithful rendering.
 */
function chatPrompt(exchange: Exchange, messages: ChatBody["messages"]): string {
  let prompt = "";
  for (const [index, message] of messages.entries()) {
    if (message.role !== "user" && message.role !== "system") {
      throw invalid(exchange, `messages.${index}.role: "${message.role.slice(0, 50)}" is not served (no chat template); send the prompt as user (and system) messages only`);
    }
    const content = message.content ?? "";
    prompt += typeof content === "string" ? content : content.map((part) => part.text).join("");
  }
  if (prompt === "") throw invalid(exchange, "messages: the user and system messages hold no text; send the prompt as a user message");
  return prompt;
}

const FINISH_REASONS: Record<GenerationResult["finish"], "stop" | "length"> = { stop: "stop", length: "length", "stop-sequence": "stop" };

/** OpenAI leaves a stop sequence out of the answer. */
const answerText = (result: GenerationResult) => (result.stopSequence ? result.text.slice(0, -result.stopSequence.length) : result.text);

const stopList = (stop: string | readonly string[] | null | undefined): readonly string[] => (stop === null || stop === undefined ? [] : typeof stop === "string" ? [stop] : stop);

function usage(result: GenerationResult) {
  return { prompt_tokens: result.promptTokens, completion_tokens: result.completionTokens, total_tokens: result.promptTokens + result.completionTokens };
}

/** Generates for the adapter the exchange's record names, then answers in OpenAI's envelope with the choice `choose` makes. */
async function answer(
  exchange: Exchange,
  ask: { prompt: string; maxNewTokens: number | null | undefined; stop: string | readonly string[] | null | undefined },
  object: "text_completion" | "chat.completion",
  choose: (result: GenerationResult) => Record<string, unknown>,
): Promise<void> {
  const result = await exchange.runner.generate({
    prompt: ask.prompt,
    adapterId: exchange.record.adapterId,
    maxNewTokens: ask.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS,
    stop: stopList(ask.stop),
    signal: exchange.signal,
  });
  sendJson(exchange, 200, {
    id: `${object === "chat.completion" ? "chatcmpl" : "cmpl"}-${randomUUID()}`,
    object,
    created: Math.floor(Date.now() / 1000),
    // The name asked for: the adapter's id, else the served model's.
    model: exchange.record.adapterId ?? exchange.modelId,
    choices: [{ index: 0, ...choose(result), logprobs: null, finish_reason: FINISH_REASONS[result.finish] }],
    usage: usage(result),
  });
}

/**
 * `POST /v1/completions` (where @huggingface/inference 4.x posts textGeneration): `model` names the adapter, as on
 * TGI, which reads no top-level `adapter_id` on this route (only `/generate` takes `parameters.adapter_id`).
 */
export async function completions(exchange: Exchange): Promise<void> {
  const body = await readJson(exchange, CompletionRequest);
  const prompt = typeof body.prompt === "string" ? body.prompt : body.prompt[0]!;
  exchange.record.promptChars = prompt.length;
  exchange.record.adapterId = openAiAdapterId(exchange, body.model);
  checkNotStreaming(exchange, body.stream);
  checkGreedy(exchange, { doSample: body.do_sample, temperature: body.temperature });
  await answer(exchange, { prompt, maxNewTokens: body.max_tokens, stop: body.stop }, "text_completion", (result) => ({
    text: (body.return_full_text ? prompt : "") + answerText(result),
  }));
}

/** `POST /v1/chat/completions`: `model` names the adapter (see openAiAdapterId), the prompt as chatPrompt builds it. */
export async function chatCompletions(exchange: Exchange): Promise<void> {
  const body = await readJson(exchange, ChatCompletionRequest);
  const prompt = chatPrompt(exchange, body.messages);
  exchange.record.promptChars = prompt.length;
  exchange.record.adapterId = openAiAdapterId(exchange, body.model);
  checkNotStreaming(exchange, body.stream);
  checkGreedy(exchange, { temperature: body.temperature });
  await answer(exchange, { prompt, maxNewTokens: body.max_completion_tokens ?? body.max_tokens, stop: body.stop }, "chat.completion", (result) => ({
    message: { role: "assistant", content: answerText(result) },
  }));
}

/** `GET /v1/models`: the served model, and the adapters loaded now (vLLM lists its LoRA modules, their parent the base). */
export function models(exchange: Exchange): void {
  const created = Math.floor(Date.now() / 1000);
  const entry = (id: string, parent: string | null) => ({ id, object: "model", created, owned_by: "safe-lora", root: id, parent });
  sendJson(exchange, 200, {
    object: "list",
    data: [entry(exchange.modelId, null), ...exchange.runner.loadedAdapters().map((id) => entry(id, exchange.modelId))],
  });
}
