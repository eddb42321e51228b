import { HubApiError } from "@huggingface/hub";
import { isUsersToFix, SafeLoraError } from "../errors.js";
import { isNetworkError } from "../hub/hub-access.js";

// Transitional, until the worker decides by src/errors.ts' table (isRetryable, isUsersToFix) and the forge
// edge turns the Hub's raw errors into SafeLoraError codes: then this file goes.

/** Failures that are the Hub's or the network's for a moment: logged as warnings, and retried with backoff. */
export function isTransient(error: unknown): boolean {
  if (error instanceof SafeLoraError) return error.code === "hub-unavailable";
  if (error instanceof HubApiError) return error.statusCode === 429 || error.statusCode >= 500;
  return isNetworkError(error);
}

export const isUserError = isUsersToFix;
