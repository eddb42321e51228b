import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One request the canned endpoint received. */
export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  /** The Authorization header, or null when none came. */
  readonly authorization: string | null;
  readonly body: Record<string, unknown>;
}

/** What the canned endpoint does with a request: answer text for its protocol, or an HTTP reply of its own. */
export type CannedReply =
  | { readonly answer: string }
  | { readonly status: number; readonly json?: unknown; readonly text?: string; readonly contentType?: string }
  | { readonly hang: true };

export interface CannedEndpoint {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly requests: SeenRequest[];
  /** Requests being answered right now, and the most there ever were at once. */
  readonly inFlight: { now: number; most: number };
  close(): Promise<void>;
}

/** The prompt a request asks, by either protocol's body. */
export function promptOf(body: Record<string, unknown>): string {
  if (typeof body.prompt === "string") return body.prompt;
  const messages = body.messages as { content: string }[] | undefined;
  return messages?.at(-1)?.content ?? "";
}

/**
 * A stand-in inference endpoint on 127.0.0.1 that speaks both protocols as @huggingface/inference asks them
 * (`POST /v1/completions` for tgi, `POST /v1/chat/completions` for openai) and answers with what `reply` says,
 * recording every request. `reply` may be async, to hold a request back.
 */
export async function startCannedEndpoint(reply: (request: SeenRequest) => CannedReply | Promise<CannedReply>): Promise<CannedEndpoint> {
  const requests: SeenRequest[] = [];
  const inFlight = { now: 0, most: 0 };
  const hanging = new Set<ServerResponse>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      void (async () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const seen: SeenRequest = {
          method: req.method ?? "",
          path: req.url ?? "",
          authorization: req.headers.authorization ?? null,
          body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
        };
        requests.push(seen);
        inFlight.now += 1;
        inFlight.most = Math.max(inFlight.most, inFlight.now);
        const outcome = await reply(seen);
        if ("hang" in outcome) {
          hanging.add(res);
          res.on("close", () => (inFlight.now -= 1));
          return;
        }
        inFlight.now -= 1;
        if ("answer" in outcome) {
          const json = seen.path.endsWith("/chat/completions")
            ? { id: "x", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: outcome.answer }, finish_reason: "stop" }] }
            : { id: "x", object: "text_completion", choices: [{ index: 0, text: outcome.answer, finish_reason: "stop" }] };
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(json));
          return;
        }
        const body = outcome.json === undefined ? (outcome.text ?? "") : JSON.stringify(outcome.json);
        res.writeHead(outcome.status, { "content-type": outcome.contentType ?? (outcome.json === undefined ? "text/plain; charset=utf-8" : "application/json") }).end(body);
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: "127.0.0.1",
    port,
    requests,
    inFlight,
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
