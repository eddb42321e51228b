import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { sameSecret } from "../http-basics.js";
import { CausalLm } from "../llama/causal-lm.js";
import type { RepoFiles } from "../storage/repo-files.js";
import type { Exchange, RequestRecord } from "./exchange.js";
import { ModelRunner } from "./model-runner.js";
import { chatCompletions, completions, models } from "./openai-routes.js";
import { errorBody, explainForClient, InferenceHttpError, type InferenceFlavour } from "./protocol-errors.js";
import { tgiGenerate, tgiInfo } from "./tgi-routes.js";

export interface LocalInferenceOptions {
  /** The model served when a request names no adapter, and its name (TGI /info model_id; the OpenAI base model name). */
  readonly model: { readonly id: string; readonly files: RepoFiles; readonly folder?: string };
  /** Where adapter ids are resolved: a Hub (the project's local Hub in tests), read with this endpoint's own token. */
  readonly hub?: { readonly hubUrl: string; readonly accessToken?: string };
  /** Token clients must send as Bearer; unset: none asked (a wrong or missing one → 401 in the protocol's error shape). */
  readonly token?: string;
  /** The server stood in for (see InferenceFlavour); default `tgi`. */
  readonly flavour?: InferenceFlavour;
}

/** Faults the tests set; each applies to every request that arrives while it is set. */
export interface InferenceFaults {
  /** Milliseconds to wait before handling a request. */
  delayMs: number;
  /** Never answer (until the client goes away or the endpoint closes). */
  hang: boolean;
  /** Fail the next `times` requests with `status` (429, 503, 500) in the protocol's error shape. */
  fail: { status: number; times: number } | null;
}

type Route = (exchange: Exchange) => Promise<void> | void;

const FAULT_KINDS = { 429: "overloaded", 503: "unavailable" } as const;

/**
 * A local inference endpoint on 127.0.0.1 serving one model, with LoRA adapters by id from a Hub: TGI's routes
 * (`POST /generate`, `POST /`, `GET /info`, `GET /health`) and the OpenAI-compatible ones (`POST /v1/completions`,
 * `POST /v1/chat/completions`, `GET /v1/models`), with their request, answer and error shapes. For the tests, the
 * demo and `npm run local-hub`: what the behavioural check asks real endpoints, asked of the miniature models.
 */
export class LocalInferenceEndpoint {
  readonly faults: InferenceFaults = { delayMs: 0, hang: false, fail: null };
  private readonly records: RequestRecord[] = [];
  private readonly flavour: InferenceFlavour;
  private readonly routes: ReadonlyMap<string, Route>;
  /** Aborted by close(): a hung or delayed request stops waiting. */
  private readonly closing = new AbortController();
  private runner: ModelRunner | null = null;
  private server: Server | null = null;
  private baseUrl = "";

  constructor(private readonly options: LocalInferenceOptions) {
    this.flavour = options.flavour ?? "tgi";
    const openAi: Array<[string, Route]> = [
      ["POST /v1/completions", completions],
      ["POST /v1/chat/completions", chatCompletions],
      ["GET /v1/models", models],
      ["GET /health", () => undefined],
    ];
    const tgi: Array<[string, Route]> = [
      ["POST /generate", (exchange) => tgiGenerate(exchange, false)],
      ["POST /", (exchange) => tgiGenerate(exchange, true)],
      ["GET /info", tgiInfo],
    ];
    this.routes = new Map(this.flavour === "tgi" ? [...openAi, ...tgi] : openAi);
  }

  /** What was asked, in order: route, adapter id (null: the model alone), whether an Authorization header came, the prompt's length, how it ended. */
  get requests(): ReadonlyArray<Readonly<RequestRecord>> {
    return this.records;
  }

  get url(): string {
    return this.baseUrl;
  }

  /** Opens the model, then listens on 127.0.0.1 (`port` 0: any free one). */
  async start(port = 0): Promise<this> {
    const { model, hub } = this.options;
    const served = await CausalLm.open(model.files, model.folder);
    this.runner = new ModelRunner(served, hub ?? null);
    this.server = createServer((request, response) => void this.answer(request, response));
    await new Promise<void>((resolve) => this.server!.listen(port, "127.0.0.1", resolve));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.closing.abort();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
    await this.runner?.release();
  }

  private async answer(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = new URL(request.url ?? "/", "http://localhost").pathname;
    const route = `${request.method ?? "GET"} ${path}`;
    const record: RequestRecord = { route, adapterId: null, authorized: request.headers.authorization !== undefined, promptChars: 0, outcome: null };
    this.records.push(record);
    // The client going away (an abort, a timeout) stops the request wherever it is: queued, generating or waiting.
    const gone = new AbortController();
    response.on("close", () => {
      if (!response.writableFinished) gone.abort();
    });
    const signal = AbortSignal.any([gone.signal, this.closing.signal]);
    try {
      await this.applyFaults(signal);
      if (signal.aborted) return void response.destroy();
      this.checkToken(request);
      const handler = this.routes.get(route);
      if (!handler) throw new InferenceHttpError(404, "not-found", `no route ${route} on this ${this.flavour === "tgi" ? "TGI" : "OpenAI-compatible"} endpoint`);
      await handler({ request, response, flavour: this.flavour, runner: this.runner!, modelId: this.options.model.id, record, signal });
      if (!response.headersSent) response.writeHead(200).end();
    } catch (error) {
      this.answerError(response, signal.aborted ? error : explainForClient(error, this.flavour));
    } finally {
      record.outcome = response.writableEnded ? response.statusCode : "abandoned";
    }
  }

  /** Waits out a delay or a hang (cut short when `signal` aborts), then fails the request if a failure is set. */
  private async applyFaults(signal: AbortSignal): Promise<void> {
    if (this.faults.delayMs > 0) await sleep(this.faults.delayMs, undefined, { signal }).catch(() => undefined);
    if (this.faults.hang && !signal.aborted) await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    const fail = this.faults.fail;
    if (fail && fail.times > 0 && !signal.aborted) {
      fail.times -= 1;
      if (fail.times === 0) this.faults.fail = null;
      const kind = FAULT_KINDS[fail.status as keyof typeof FAULT_KINDS] ?? "generation";
      throw new InferenceHttpError(fail.status, kind, `fault set by the test: answering ${fail.status}`);
    }
  }

  private checkToken(request: IncomingMessage): void {
    const expected = this.options.token;
    if (expected === undefined) return;
    const header = request.headers.authorization;
    const given = header?.startsWith("Bearer ") ? header.slice(7) : null;
    if (given === null || !sameSecret(given, expected)) {
      throw new InferenceHttpError(401, "unauthorized", given === null ? "Unauthorized: send the endpoint's token as Authorization: Bearer <token>" : "Unauthorized: the token is not this endpoint's");
    }
  }

  private answerError(response: ServerResponse, error: unknown): void {
    if (response.headersSent || response.destroyed) return void response.destroy();
    const http = error instanceof InferenceHttpError ? error : new InferenceHttpError(500, "generation", `the endpoint failed: ${error instanceof Error ? error.message : String(error)}`);
    // A refused body is not read to its end: close the connection rather than keep it alive half-read.
    if (http.status === 413) response.setHeader("Connection", "close");
    response.writeHead(http.status, { "Content-Type": "application/json" }).end(JSON.stringify(errorBody(this.flavour, http)));
  }
}
