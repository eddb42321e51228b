import { HubApiError } from "@huggingface/hub";
import { SafeLoraError } from "../errors.js";
import { HubRequestError } from "../hub/discussions.js";
import { isNetworkError } from "../hub/hub-access.js";

/** Failures that are the Hub's or the network's for a moment: the job is retried with backoff. */
export function isTransient(error: unknown): boolean {
  if (error instanceof SafeLoraError) return error.code === "hub-unavailable";
  const status = error instanceof HubApiError || error instanceof HubRequestError ? error.statusCode : undefined;
  if (status !== undefined) return status === 429 || status >= 500;
  return isNetworkError(error);
}

/**
 * Failures the user can fix — a bad adapter, no pair, a gated model, a limit: reported once in a comment,
 * never retried. The execution provider being unavailable is the operator's, not the user's.
 */
export function isUserError(error: unknown): error is SafeLoraError {
  return error instanceof SafeLoraError && !isTransient(error) && error.code !== "execution-provider-unavailable";
}
