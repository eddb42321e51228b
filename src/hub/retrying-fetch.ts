/** Status codes worth a second try: rate limited, or the Hub (or a proxy before it) briefly unavailable. */
const TRANSIENT = new Set([429, 500, 502, 503, 504]);

export interface RetryOptions {
  /** Tries in all, the first included. */
  readonly attempts?: number;
  /** Base of the exponential backoff when the Hub does not say how long to wait. */
  readonly baseDelayMs?: number;
  /** Never wait longer than this for one retry, whatever the Hub asks. */
  readonly maxDelayMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Seconds the server asked us to wait: `Retry-After`, or the IETF `RateLimit` header's `t=` (the Hub's form). */
export function requestedDelaySeconds(headers: Headers): number | null {
  const retryAfter = headers.get("retry-after")?.trim();
  if (retryAfter && /^\d+$/.test(retryAfter)) return Number(retryAfter);
  const match = /(?:^|[;,\s])t=(\d+)/.exec(headers.get("ratelimit") ?? "");
  if (match) return Number(match[1]);
  const reset = headers.get("ratelimit-reset")?.trim();
  return reset && /^\d+$/.test(reset) ? Number(reset) : null;
}

/**
 * A fetch that retries transient failures — network errors, 429 and 5xx — waiting as long as the Hub's
 * `Retry-After` / `RateLimit` headers say, else with exponential backoff. Every Hub call of the project goes
 * through it (hubParams injects it), so @huggingface/hub's calls get the same treatment as ours.
 */
export function retryingFetch(inner: typeof fetch = fetch, options: RetryOptions = {}): typeof fetch {
  const attempts = options.attempts ?? 5;
  const base = options.baseDelayMs ?? 500;
  const max = options.maxDelayMs ?? 60_000;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  return async (input, init) => {
    for (let attempt = 1; ; attempt++) {
      let response: Response;
      try {
        response = await inner(input, init);
      } catch (error) {
        // A refused connection or reset: the network, not the request. Aborts are the caller's choice.
        if (attempt >= attempts || (error as Error).name === "AbortError") throw error;
        await sleep(Math.min(max, base * 2 ** (attempt - 1)));
        continue;
      }
      if (!TRANSIENT.has(response.status) || attempt >= attempts) return response;
      const asked = requestedDelaySeconds(response.headers);
      await response.arrayBuffer().catch(() => undefined);
      await sleep(Math.min(max, asked !== null ? asked * 1000 : base * 2 ** (attempt - 1)));
    }
  };
}
