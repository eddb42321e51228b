/** Thrown when an endpoint's response is longer than the check reads of it. */
export class ResponseTooLarge extends Error {
  override readonly name = "ResponseTooLarge";
  constructor(readonly maxBytes: number) {
    super(`the response is longer than the ${maxBytes} bytes read of an endpoint's answer`);
  }
}

/**
 * A fetch whose responses are read into memory up to `maxBytes` and refused beyond it. The inference client reads
 * a whole body with `response.json()`; an endpoint sending without end would otherwise fill the bot's memory.
 */
export function cappedFetch(maxBytes: number, inner: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    const response = await inner(input, init);
    if (!response.body) return response;
    if (Number(response.headers.get("content-length") ?? 0) > maxBytes) {
      await response.body.cancel().catch(() => undefined);
      throw new ResponseTooLarge(maxBytes);
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.byteLength;
        if (total > maxBytes) throw new ResponseTooLarge(maxBytes);
        chunks.push(value);
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
    return new Response(total === 0 ? null : Buffer.concat(chunks), { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}
