import type { IncomingMessage, ServerResponse } from "node:http";
import { readBody as readCappedBody } from "../http-basics.js";

export { BodyTooLarge, sameSecret } from "../http-basics.js";

/** Larger than any webhook the Hub sends; a bigger body is refused before it is held in memory. */
const MAX_BODY = 5 * 1024 * 1024;

export const HTML = "text/html; charset=utf-8";

/** The body, up to `maxBytes` (default: larger than any webhook the Hub sends); beyond it BodyTooLarge. */
export function readBody(request: IncomingMessage, maxBytes = MAX_BODY): Promise<Buffer> {
  return readCappedBody(request, maxBytes);
}

/**
 * 413 for a body over its cap. The rest of the body is never read, so the connection is closed rather than kept
 * alive half-read (a server stopping would wait for it until the keep-alive timeout).
 */
export function sendTooLarge(response: ServerResponse): void {
  response.setHeader("Connection", "close");
  send(response, 413, { error: "payload too large" });
}

/** Answers `body`: as JSON, or as text of `type`. */
export function send(response: ServerResponse, status: number, body: unknown, type = "application/json"): void {
  response.writeHead(status, { "Content-Type": type }).end(type === "application/json" ? JSON.stringify(body) : String(body));
}
