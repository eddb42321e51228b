import { SafeLoraError } from "../errors.js";

/**
 * Which server the endpoint stands in for. `tgi`: text-generation-inference (one model, the adapter per request in
 * `adapter_id`, or as `model` on its OpenAI routes), errors `{error, error_type}`. `vllm`: an OpenAI-compatible
 * server (one model name per adapter), only the `/v1` routes, errors `{error: {message, type, param, code}}`.
 */
export type InferenceFlavour = "tgi" | "vllm";

/** What went wrong, in words both protocols have a shape for. */
export type ProblemKind = "validation" | "unauthorized" | "not-found" | "too-large" | "overloaded" | "unavailable" | "generation" | "bad-gateway";

/** A request answered with an HTTP error, in the endpoint's protocol's shape (errorResponse). */
export class InferenceHttpError extends Error {
  constructor(
    readonly status: number,
    readonly kind: ProblemKind,
    message: string,
  ) {
    super(message);
  }
}

// TGI's error_type strings (router/src/server.rs): validation 422, generation 424, overloaded 429.
const TGI_TYPES: Record<ProblemKind, string> = {
  validation: "validation",
  unauthorized: "authentication",
  "not-found": "validation",
  "too-large": "validation",
  overloaded: "overloaded",
  unavailable: "unhealthy",
  generation: "generation",
  "bad-gateway": "generation",
};

// OpenAI's error types and codes, as vLLM's OpenAI server also answers them.
const OPENAI_TYPES: Record<ProblemKind, { type: string; code: string | null }> = {
  validation: { type: "invalid_request_error", code: null },
  unauthorized: { type: "invalid_request_error", code: "invalid_api_key" },
  "not-found": { type: "invalid_request_error", code: "model_not_found" },
  "too-large": { type: "invalid_request_error", code: null },
  overloaded: { type: "requests", code: "rate_limit_exceeded" },
  unavailable: { type: "server_error", code: null },
  generation: { type: "server_error", code: null },
  "bad-gateway": { type: "server_error", code: null },
};

/** The body of an error answer in `flavour`'s shape. */
export function errorBody(flavour: InferenceFlavour, error: InferenceHttpError): unknown {
  // vLLM's API-key middleware answers a bare {"error": "Unauthorized"}, not its usual shape.
  if (flavour === "vllm" && error.kind === "unauthorized") return { error: "Unauthorized" };
  if (flavour === "tgi") return { error: error.message, error_type: TGI_TYPES[error.kind] };
  const { type, code } = OPENAI_TYPES[error.kind];
  return { error: { message: error.message, type, param: null, code } };
}

/** The status an unknown adapter or model gets: TGI validates adapter ids (422), an OpenAI server has no such model (404). */
export const notFoundStatus = (flavour: InferenceFlavour): number => (flavour === "tgi" ? 422 : 404);

/** The status of a request the endpoint cannot take as written: TGI's validation errors are 422, OpenAI's 400. */
export const validationStatus = (flavour: InferenceFlavour): number => (flavour === "tgi" ? 422 : 400);

/**
 * A SafeLoraError raised while resolving an adapter or generating, as the HTTP error a client sees: an adapter
 * that is not there (or not readable with the endpoint's token) is "not found"; a prompt the model cannot take, or
 * an adapter it cannot apply, is the request's fault; an unreachable Hub is a bad gateway. Anything else is a bug
 * and passes through (answered 500).
 */
export function explainForClient(error: unknown, flavour: InferenceFlavour): unknown {
  if (!(error instanceof SafeLoraError)) return error;
  switch (error.code) {
    case "hub-not-found":
    case "hub-access":
    case "missing-file":
      return new InferenceHttpError(notFoundStatus(flavour), "not-found", error.message);
    case "hub-unavailable":
      return new InferenceHttpError(502, "bad-gateway", error.message);
    default:
      return new InferenceHttpError(validationStatus(flavour), "validation", error.message);
  }
}
