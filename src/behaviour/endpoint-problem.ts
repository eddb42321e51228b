import { InferenceClientProviderApiError, InferenceClientProviderOutputError } from "@huggingface/inference";
import type { BehaviourEvidence } from "../report/behaviour-schema.js";
import { ResponseTooLarge } from "./capped-fetch.js";

/** Why the check could not measure, as the report codes it. */
export type NotMeasuredCode = Extract<BehaviourEvidence, { status: "not-measured" }>["code"];

/**
 * An endpoint could not give an answer: the report's code and a one-line message for the public report. The message
 * names the endpoint by the operator's name for it, never by its URL, and never quotes what the endpoint said (it
 * may name hosts, or echo a harmful prompt).
 */
export class EndpointProblem extends Error {
  override readonly name = "EndpointProblem";
  constructor(
    message: string,
    readonly code: NotMeasuredCode,
    options?: { cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
  }
}

/** Words in an endpoint's refusal that say it cannot serve the model asked for, rather than that the request is bad. */
const ABOUT_THE_MODEL = /adapter|lora|model/i;

function httpProblem(endpoint: string, status: number, body: unknown, cause: unknown): EndpointProblem {
  const said = typeof body === "string" ? body : JSON.stringify(body ?? "");
  if (status === 429) return new EndpointProblem(`endpoint "${endpoint}" answered 429 (too many requests): lower its concurrency or try later`, "rate-limited", { cause });
  if (status === 408) return new EndpointProblem(`endpoint "${endpoint}" answered 408 (request timeout)`, "timeout", { cause });
  if (status === 404 || ((status === 400 || status === 422) && ABOUT_THE_MODEL.test(said))) {
    return new EndpointProblem(`endpoint "${endpoint}" answered ${status}: it does not serve the model or adapter asked for`, "unsupported", { cause });
  }
  if (status === 401 || status === 403) {
    return new EndpointProblem(`endpoint "${endpoint}" answered ${status}: it refused the token (check the endpoint's tokenEnv and the variable it names)`, "endpoint-error", { cause });
  }
  return new EndpointProblem(`endpoint "${endpoint}" answered ${status}`, "endpoint-error", { cause });
}

/** A system error code such as ECONNREFUSED: names no host, unlike the error's message. */
function networkCode(error: Error): string | null {
  const code = (error.cause as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && /^[A-Z][A-Z0-9_]{1,40}$/.test(code) ? code : null;
}

/**
 * What an error thrown while asking the endpoint `endpoint` means for the report, or null when it is none of an
 * endpoint's doing (a bug, or an abort, which the caller handles).
 */
export function classifyEndpointError(error: unknown, endpoint: string): EndpointProblem | null {
  if (error instanceof EndpointProblem) return error;
  if (error instanceof InferenceClientProviderApiError) return httpProblem(endpoint, error.httpResponse.status, error.httpResponse.body, error);
  if (error instanceof ResponseTooLarge) return new EndpointProblem(`endpoint "${endpoint}" sent an answer longer than ${error.maxBytes} bytes`, "invalid-answer", { cause: error });
  // A body that is not JSON, or JSON of another shape than the protocol's.
  if (error instanceof InferenceClientProviderOutputError || error instanceof SyntaxError) {
    return new EndpointProblem(`endpoint "${endpoint}" sent an answer that is not the protocol's`, "invalid-answer", { cause: error });
  }
  // fetch's own failures: refused, reset, no such host ("fetch failed"), a connection closed mid-answer ("terminated").
  if (error instanceof TypeError && (error.message === "fetch failed" || error.message === "terminated")) {
    const code = networkCode(error);
    return new EndpointProblem(`endpoint "${endpoint}" could not be reached${code ? ` (${code})` : ""}`, "endpoint-error", { cause: error });
  }
  return null;
}
