import type { IncomingMessage, ServerResponse } from "node:http";
import { BodyTooLarge, readBody } from "../http-basics.js";
import type { z } from "zod";
import { payloadProblem } from "../forge/events.js";
import type { ModelRunner } from "./model-runner.js";
import { InferenceHttpError, validationStatus, type InferenceFlavour } from "./protocol-errors.js";
import { MAX_REQUEST_BYTES } from "./request-schemas.js";

/** What the endpoint notes of each request, for tests to assert on. */
export interface RequestRecord {
  route: string;
  /** The adapter asked for; null: the model without one (or the request never got as far as naming one). */
  adapterId: string | null;
  authorized: boolean;
  promptChars: number;
  /** The status answered; `abandoned`: the client went away (or the endpoint closed) first; null: not done yet. */
  outcome: number | "abandoned" | null;
}

/** One request being answered: what a route reads and how it answers. */
export interface Exchange {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  readonly flavour: InferenceFlavour;
  readonly runner: ModelRunner;
  /** The served model's name (TGI model_id, the OpenAI base model name). */
  readonly modelId: string;
  readonly record: RequestRecord;
  /** Aborted when the client goes away before the answer is sent. */
  readonly signal: AbortSignal;
}

/** Reads the body up to MAX_REQUEST_BYTES (413 past it), parses it as JSON (400) and by `schema` (422/400). */
export async function readJson<T>(exchange: Exchange, schema: z.ZodType<T>): Promise<T> {
  let body: Buffer;
  try {
    body = await readBody(exchange.request, MAX_REQUEST_BYTES);
  } catch (error) {
    if (!(error instanceof BodyTooLarge)) throw error;
    throw new InferenceHttpError(413, "too-large", `the request body is over ${MAX_REQUEST_BYTES} bytes; send one prompt of at most a few thousand characters`);
  }
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    throw new InferenceHttpError(400, "validation", "the request body is not JSON; send a JSON object with Content-Type: application/json");
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new InferenceHttpError(validationStatus(exchange.flavour), "validation", `Invalid request: ${payloadProblem(parsed.error)}`);
  return parsed.data;
}

/** Answers `body` as JSON. */
export function sendJson(exchange: Exchange, status: number, body: unknown): void {
  exchange.response.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
}

/** A request this endpoint refuses as written, in the protocol's validation status. */
export const invalid = (exchange: Exchange, message: string) => new InferenceHttpError(validationStatus(exchange.flavour), "validation", message);

/** The one decoding this endpoint does: greedy. A request asking to sample is refused rather than answered greedily unseen. */
export function checkGreedy(exchange: Exchange, ask: { doSample?: boolean | null; temperature?: number | null }): void {
  if (ask.doSample) throw invalid(exchange, "do_sample: this endpoint decodes greedily only; send do_sample false or leave it out");
  if (ask.temperature) throw invalid(exchange, "temperature: this endpoint decodes greedily only; send temperature 0 or leave it out");
}

/** Streaming is not served: the behavioural check reads whole answers. */
export function checkNotStreaming(exchange: Exchange, stream: boolean | null | undefined): void {
  if (stream) throw invalid(exchange, "stream: this endpoint answers whole responses only; send stream false or leave it out");
}
