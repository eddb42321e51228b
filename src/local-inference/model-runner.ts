import type { HubAccess } from "../hub/hub-access.js";
import { AdapterCache } from "./adapter-cache.js";
import { parseAdapterId } from "./adapter-id.js";
import type { CausalLm } from "../llama/causal-lm.js";

/** One generation as a route asks for it. */
export interface GenerationAsk {
  readonly prompt: string;
  /** null: the model without an adapter. */
  readonly adapterId: string | null;
  readonly maxNewTokens: number;
  /** Stop sequences: the answer ends at the first of them. */
  readonly stop: readonly string[];
  /** Aborted when the client goes away: a queued request is dropped, a running one stopped. */
  readonly signal: AbortSignal;
}

/** What a route answers from. */
export interface GenerationResult {
  /** The generated text, up to and including a stop sequence that ended it. */
  readonly text: string;
  /** `stop`: the model ended the answer; `length`: the token budget ran out; `stop-sequence`: `stopSequence` came. */
  readonly finish: "stop" | "length" | "stop-sequence";
  readonly stopSequence: string | null;
  readonly promptTokens: number;
  readonly completionTokens: number;
}

/** Where in `text` the earliest stop sequence ends, and which one it is; null when none occurs. */
function firstStop(text: string, stop: readonly string[]): { end: number; sequence: string } | null {
  let best: { end: number; sequence: string } | null = null;
  for (const sequence of stop) {
    const at = text.indexOf(sequence);
    if (at !== -1 && (!best || at + sequence.length < best.end)) best = { end: at + sequence.length, sequence };
  }
  return best;
}

/**
 * The served model with its adapters, one request at a time (adapter loaded, then generated): the forward pass is
 * heavy CPU work, and running requests in turn keeps each greedy answer independent of what else is asked, the
 * event loop free between steps, and an adapter evicted from the cache unused by anyone when it is closed.
 */
export class ModelRunner {
  private readonly adapters: AdapterCache;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly model: CausalLm,
    hub: HubAccess | null,
  ) {
    this.adapters = new AdapterCache(model, hub);
  }

  /** Ids of the adapters loaded now. */
  loadedAdapters(): string[] {
    return this.adapters.loaded();
  }

  async generate(ask: GenerationAsk): Promise<GenerationResult> {
    // Checked before the queue: a malformed id or a character the model lacks needs no turn.
    const location = ask.adapterId === null ? null : parseAdapterId(ask.adapterId);
    const promptTokens = this.model.encode(ask.prompt).length;
    const turn = this.tail.then(async () => {
      ask.signal.throwIfAborted();
      const lora = location === null ? null : await this.adapters.get(location);
      return this.model.generate(ask.prompt, { lora, maxNewTokens: ask.maxNewTokens, signal: ask.signal });
    });
    // The next request waits for this one to end, however it ends.
    this.tail = turn.catch(() => undefined);
    const generation = await turn;
    // Greedy decoding is deterministic, so cutting the whole answer at a stop sequence gives what stopping there would.
    const stop = firstStop(generation.text, ask.stop);
    if (!stop) {
      return { text: generation.text, finish: generation.finish, stopSequence: null, promptTokens, completionTokens: generation.tokens.length };
    }
    const text = generation.text.slice(0, stop.end);
    return { text, finish: "stop-sequence", stopSequence: stop.sequence, promptTokens, completionTokens: this.model.encode(text).length };
  }

  async release(): Promise<void> {
    await this.tail;
    await this.model.release();
  }
}
