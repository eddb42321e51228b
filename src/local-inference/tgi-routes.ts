import { checkGreedy, checkNotStreaming, readJson, sendJson, type Exchange } from "./exchange.js";
import type { GenerationResult } from "./model-runner.js";
import { DEFAULT_MAX_NEW_TOKENS, TgiGenerateRequest } from "./request-schemas.js";

/** TGI's finish reasons (`details.finish_reason`). */
const FINISH_REASONS: Record<GenerationResult["finish"], string> = { stop: "eos_token", length: "length", "stop-sequence": "stop_sequence" };

/** The adapter TGI's `adapter_id` names: none, empty or the served model's own id mean the model alone. */
function tgiAdapterId(adapterId: string | null | undefined, modelId: string): string | null {
  return !adapterId || adapterId === modelId ? null : adapterId;
}

/**
 * `POST /generate` (`{generated_text, details?}`) and `POST /`, TGI's compat route (the same in a one-element
 * array). Honoured: max_new_tokens, adapter_id, stop, return_full_text, details (finish reason and token count
 * only). Greedy only: do_sample true is refused (422).
 */
export async function tgiGenerate(exchange: Exchange, compat: boolean): Promise<void> {
  const body = await readJson(exchange, TgiGenerateRequest);
  const parameters = body.parameters ?? {};
  exchange.record.promptChars = body.inputs.length;
  exchange.record.adapterId = tgiAdapterId(parameters.adapter_id, exchange.modelId);
  checkNotStreaming(exchange, body.stream);
  checkGreedy(exchange, { doSample: parameters.do_sample });
  const result = await exchange.runner.generate({
    prompt: body.inputs,
    adapterId: exchange.record.adapterId,
    maxNewTokens: parameters.max_new_tokens ?? DEFAULT_MAX_NEW_TOKENS,
    stop: parameters.stop ?? [],
    signal: exchange.signal,
  });
  const answer = {
    generated_text: parameters.return_full_text ? body.inputs + result.text : result.text,
    ...(parameters.details ? { details: { finish_reason: FINISH_REASONS[result.finish], generated_tokens: result.completionTokens, seed: null, prefill: [], tokens: [] } } : {}),
  };
  sendJson(exchange, 200, compat ? [answer] : answer);
}

/** `GET /info`: what TGI says of the model it serves. */
export function tgiInfo(exchange: Exchange): void {
  sendJson(exchange, 200, {
    model_id: exchange.modelId,
    model_sha: null,
    model_pipeline_tag: "text-generation",
    max_concurrent_requests: 1,
    max_best_of: 1,
    max_stop_sequences: 4,
    max_client_batch_size: 1,
    router: "text-generation-router",
    version: "safe-lora-local",
    sha: null,
    docker_label: null,
  });
}
