import * as ort from "onnxruntime-node";
import { SafeLoraError } from "../errors.js";
import { REPO_ROOT, repoFolder, type RepoFiles } from "../storage/repo-files.js";
import { CharVocabulary } from "./char-vocabulary.js";
import { llamaShape, readLlamaConfig, stopTokenIds, type LlamaConfig, type LlamaShape } from "./llama-config.js";
import { buildLlamaModel, LlamaGraphInput, LlamaGraphOutput, loraInputNames, type LoraSlot } from "./llama-graph.js";
import { loadLlamaLora, type LoadedLora } from "./llama-lora.js";
import { llamaWeightSlots, readLlamaWeights } from "./llama-weights.js";

export type { LlamaConfig } from "./llama-config.js";

/** A LoRA adapter opened for one CausalLm (openLora); pass it to that model's lastLogits and generate. */
export interface LlamaLora {
  /** Where the adapter was read from, for messages. */
  readonly description: string;
  /** The transformers names of the weights it adapts. */
  readonly adaptedWeights: readonly string[];
}

export interface Generation {
  /** The generated characters, the stop character included when generation stopped on one (as reference.json records). */
  readonly text: string;
  readonly tokens: readonly number[];
  /** "stop": an end/pad token; "length": maxNewTokens or the model's max positions reached. */
  readonly finish: "stop" | "length";
  /** Steps where the top two logits differed by less than 1e-4 (greedy choice then is a near-tie): step index and margin. */
  readonly nearTies: ReadonlyArray<{ step: number; margin: number }>;
}

/** Below this gap between the two largest logits, fp32 rounding differences between implementations can flip the greedy choice. */
export const NEAR_TIE_MARGIN = 1e-4;

/** The greedy token (the first of equal maxima, as torch.argmax) and its lead over the runner-up. */
export function greedyChoice(logits: Float32Array): { token: number; margin: number } {
  let best = 0;
  let second = -Infinity;
  for (let i = 1; i < logits.length; i++) {
    const value = logits[i]!;
    if (value > logits[best]!) {
      second = logits[best]!;
      best = i;
    } else if (value > second) {
      second = value;
    }
  }
  return { token: best, margin: logits[best]! - second };
}

/** An adapter's graph session and the factors it is fed. */
interface LoraRun {
  readonly session: Promise<ort.InferenceSession>;
  readonly factors: ReadonlyMap<string, ort.Tensor>;
}

// No spinning: pool threads would otherwise busy-wait between ops, taking the cores that the rest of the process
// (an HTTP server, other sessions) needs — as projection-session.ts does. One intra-op thread: the miniature's
// matrices are too small to split (measured: 224 generations took 18 s with the default pool, 13 s with one
// thread on 2 busy cores).
const SESSION_OPTIONS = { executionProviders: ["cpu"], intraOpNumThreads: 1, graphOptimizationLevel: "all", logSeverityLevel: 4, extra: { session: { intra_op: { allow_spinning: "0" } } } } as const;

/**
 * transformers' LlamaForCausalLM run by onnxruntime on the CPU, batch 1, with LoRA adapters applied at run time
 * (each adapter gets its own graph; all graphs are fed the same one copy of the weights). Tokenization is the
 * miniature family's character vocabulary (vocab.json). No KV cache: each step runs the whole sequence.
 */
export class CausalLm {
  private readonly shape: LlamaShape;
  private readonly stopIds: ReadonlySet<number>;
  private readonly baseSession: Promise<ort.InferenceSession>;
  private readonly loras = new WeakMap<LlamaLora, LoraRun>();
  private readonly sessions = new Set<Promise<ort.InferenceSession>>();
  /** Session runs in progress, so that no session is released under one. */
  private readonly running = new Set<Promise<unknown>>();
  private released = false;

  private constructor(
    readonly config: LlamaConfig,
    private readonly vocabulary: CharVocabulary,
    /** The weights as graph inputs, by transformers name. */
    private readonly weightFeeds: Readonly<Record<string, ort.Tensor>>,
  ) {
    this.shape = llamaShape(config);
    this.stopIds = stopTokenIds(config);
    this.baseSession = this.createSession([]);
  }

  /** Opens config.json, the safetensors weights (single file or sharded index) and the char vocabulary (vocab.json) from `files` (in `folder`, default root). */
  static async open(files: RepoFiles, folder: string = REPO_ROOT): Promise<CausalLm> {
    const subfolder = repoFolder(folder, "the model folder");
    const config = await readLlamaConfig(files, subfolder);
    const shape = llamaShape(config);
    const vocabulary = await CharVocabulary.read(files, subfolder, shape.vocab);
    const weights = await readLlamaWeights(files, subfolder, shape, config.tie_word_embeddings);
    const feeds: Record<string, ort.Tensor> = {};
    for (const slot of llamaWeightSlots(shape)) feeds[slot.name] = new ort.Tensor("float32", weights.get(slot.name)!, [...slot.dims]);
    const model = new CausalLm(config, vocabulary, feeds);
    await model.baseSession;
    return model;
  }

  private createSession(slots: readonly LoraSlot[]): Promise<ort.InferenceSession> {
    const session = ort.InferenceSession.create(buildLlamaModel({ shape: this.shape, rmsNormEps: this.config.rms_norm_eps, ropeTheta: this.config.rope_theta }, slots), SESSION_OPTIONS);
    this.sessions.add(session);
    return session;
  }

  /** Opens a PEFT LoRA adapter for this model (checks every adapted module exists with matching shapes). */
  async openLora(files: RepoFiles, folder: string = REPO_ROOT): Promise<LlamaLora> {
    this.checkOpen();
    const loaded: LoadedLora = await loadLlamaLora(files, folder, this.shape);
    const factors = new Map<string, ort.Tensor>();
    for (const slot of loaded.slots) {
      const { a, b } = loraInputNames(slot.weight);
      factors.set(a, new ort.Tensor("float32", loaded.factors.get(a)!, [slot.rank, slot.dIn]));
      factors.set(b, new ort.Tensor("float32", loaded.factors.get(b)!, [slot.dOut, slot.rank]));
    }
    const lora: LlamaLora = { description: loaded.description, adaptedWeights: loaded.slots.map((slot) => slot.weight) };
    const session = this.createSession(loaded.slots);
    await session;
    this.loras.set(lora, { session, factors });
    return lora;
  }

  /** Releases an adapter's session; using the adapter afterwards is a usage error. */
  async closeLora(lora: LlamaLora): Promise<void> {
    const run = this.loras.get(lora);
    if (!run) return;
    this.loras.delete(lora);
    this.sessions.delete(run.session);
    // A generation may be mid-step on it (a server evicting a cached adapter): release only once that step ends.
    await this.settled();
    await (await run.session).release();
  }

  /** Prompt → ids; a character outside the vocabulary is a SafeLoraError (code "usage") naming it. */
  encode(text: string): number[] {
    return this.vocabulary.encode(text);
  }

  /** Last-position logits for a prompt, fp32, length vocab_size. */
  async lastLogits(prompt: string, lora: LlamaLora | null = null): Promise<Float32Array> {
    return this.run(this.promptIds(prompt), lora);
  }

  /** Greedy decoding: stop after an eos or pad token, or maxNewTokens new tokens, or max_position_embeddings positions in all. */
  async generate(prompt: string, options: { lora?: LlamaLora | null; maxNewTokens: number; signal?: AbortSignal }): Promise<Generation> {
    const { maxNewTokens, signal } = options;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new SafeLoraError(`maxNewTokens is ${maxNewTokens}; it must be a whole number, 0 or more`, "usage");
    const ids = this.promptIds(prompt);
    const tokens: number[] = [];
    const nearTies: Array<{ step: number; margin: number }> = [];
    let finish: Generation["finish"] = "length";
    while (tokens.length < maxNewTokens && ids.length < this.shape.maxPositions) {
      signal?.throwIfAborted();
      const { token, margin } = greedyChoice(await this.run(ids, options.lora ?? null));
      if (margin < NEAR_TIE_MARGIN) nearTies.push({ step: tokens.length, margin });
      tokens.push(token);
      ids.push(token);
      if (this.stopIds.has(token)) {
        finish = "stop";
        break;
      }
    }
    return { text: this.vocabulary.decode(tokens), tokens, finish, nearTies };
  }

  /** The prompt's ids, refused when there is nothing to predict from or more than the model's positions. */
  private promptIds(prompt: string): number[] {
    const ids = this.encode(prompt);
    if (ids.length === 0) throw new SafeLoraError("the prompt is empty; the model needs at least one character to predict the next", "usage");
    if (ids.length > this.shape.maxPositions) {
      throw new SafeLoraError(`the prompt is ${ids.length} characters, more than the model's ${this.shape.maxPositions} positions (max_position_embeddings)`, "usage");
    }
    return ids;
  }

  /** One forward pass, counted as running from the call on, so a release in between waits for it. */
  private run(ids: readonly number[], lora: LlamaLora | null): Promise<Float32Array> {
    const running = this.runSession(ids, lora);
    this.running.add(running);
    const done = () => this.running.delete(running);
    running.then(done, done);
    return running;
  }

  private async runSession(ids: readonly number[], lora: LlamaLora | null): Promise<Float32Array> {
    this.checkOpen();
    const adapter = lora === null ? null : this.loras.get(lora);
    if (lora !== null && !adapter) {
      throw new SafeLoraError(`the adapter ${lora.description} was not opened by this model (or was closed); open it with this model's openLora`, "usage");
    }
    const session = await (adapter?.session ?? this.baseSession);
    const feeds: Record<string, ort.Tensor> = { ...this.weightFeeds, [LlamaGraphInput.inputIds]: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [ids.length]) };
    for (const [name, tensor] of adapter?.factors ?? []) feeds[name] = tensor;
    const results = await session.run(feeds);
    return results[LlamaGraphOutput.lastLogits]!.data as Float32Array;
  }

  /** Waits for the runs in progress, whatever their outcome. */
  private async settled(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  private checkOpen(): void {
    if (this.released) throw new SafeLoraError("this model was released; open it again with CausalLm.open", "usage");
  }

  /** Releases every onnxruntime session (the base graph's and each adapter's) once the runs in progress end; the model cannot run afterwards. */
  async release(): Promise<void> {
    this.released = true;
    const sessions = [...this.sessions];
    this.sessions.clear();
    await this.settled();
    await Promise.all(sessions.map(async (session) => (await session.catch(() => null))?.release()));
  }
}
