import { HubApiError } from "@huggingface/hub";
import { SafeLoraError } from "../errors.js";
import { retryingFetch } from "./retrying-fetch.js";

/** How to reach a Hub: its base URL (HF_ENDPOINT, --hub-url), a token, and an injectable fetch for tests. */
export interface HubAccess {
  readonly hubUrl: string;
  readonly accessToken?: string;
  readonly fetch?: typeof fetch;
}

export const DEFAULT_HUB_URL = "https://huggingface.co";

/** `hubUrl` as a command must name it (`--hub-url`): without trailing slashes, and undefined for the default Hub. */
export function nonDefaultHubUrl(hubUrl: string | undefined): string | undefined {
  const trimmed = hubUrl?.replace(/\/+$/, "");
  return trimmed && trimmed !== DEFAULT_HUB_URL ? trimmed : undefined;
}

const retrying = new WeakMap<typeof fetch, typeof fetch>();

/** The @huggingface/hub parameters every call takes, with a fetch that retries transient failures. */
export function hubParams(access: HubAccess) {
  const inner = access.fetch ?? fetch;
  let wrapped = retrying.get(inner);
  if (!wrapped) {
    wrapped = retryingFetch(inner);
    retrying.set(inner, wrapped);
  }
  return {
    hubUrl: access.hubUrl.replace(/\/+$/, ""),
    ...(access.accessToken ? { accessToken: access.accessToken } : {}),
    fetch: wrapped,
  };
}

/** fetch() rejects with a TypeError when no answer came at all: connection refused or reset, DNS, TLS. */
function isNetworkError(error: unknown): error is TypeError {
  return error instanceof TypeError && /fetch failed|network|ECONN|ENOTFOUND|EAI_AGAIN|socket|certificate/i.test(`${error.message} ${String(error.cause ?? "")}`);
}

/**
 * Turns a Hub error about `repoId` into a message that says what to do: the Hub's answers, and no answer at
 * all (after the retries). Anything else (a bug) passes through unchanged.
 */
export function explainHubError(error: unknown, repoId: string, access: HubAccess): unknown {
  if (isNetworkError(error)) {
    const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
    const reason = typeof cause?.code === "string" ? cause.code : typeof cause?.message === "string" ? cause.message : error.message;
    return new SafeLoraError(
      `cannot reach the Hub at ${hubParams(access).hubUrl} to read ${repoId} (${reason}); check --hub-url or HF_ENDPOINT and the network, then try again`,
      "hub-unavailable",
      { cause: error },
    );
  }
  if (!(error instanceof HubApiError)) return error;
  const page = `${hubParams(access).hubUrl}/${repoId}`;
  const detail = error.message.split(". URL:")[0];
  switch (error.statusCode) {
    case 401:
      return new SafeLoraError(
        access.accessToken
          ? `${repoId}: the Hub refused the token (${detail})`
          : `${repoId} was not found or is private (${detail})`,
        "hub-access",
        { cause: error, fix: { kind: "model-access", model: repoId, page, reason: access.accessToken ? "token-refused" : "no-token" } },
      );
    case 403:
      return new SafeLoraError(`${repoId} is gated or private and this token may not read it (${detail})`, "hub-access", {
        cause: error,
        fix: { kind: "model-access", model: repoId, page, reason: "gated" },
      });
    case 404:
      return new SafeLoraError(`${repoId}: not found on ${hubParams(access).hubUrl} (${detail}); check the id and the revision`, "hub-not-found", { cause: error });
    default:
      return new SafeLoraError(`${repoId}: the Hub answered ${error.statusCode} (${detail}); try again later`, "hub-unavailable", { cause: error });
  }
}
