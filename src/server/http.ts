import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

/** Larger than any webhook the Hub sends; a bigger body is refused before it is held in memory. */
const MAX_BODY = 5 * 1024 * 1024;

export const HTML = "text/html; charset=utf-8";

/** Compares secrets in constant time (hashing first, so lengths leak nothing either). */
export function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

export class BodyTooLarge extends Error {}

export async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).byteLength;
    if (size > MAX_BODY) throw new BodyTooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Answers `body`: as JSON, or as text of `type`. */
export function send(response: ServerResponse, status: number, body: unknown, type = "application/json"): void {
  response.writeHead(status, { "Content-Type": type }).end(type === "application/json" ? JSON.stringify(body) : String(body));
}
