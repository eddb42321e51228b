import { generateKeyPairSync } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Octokit, RequestError } from "octokit";

/** An App's key pair as a test makes it: the local GitHub gets the public key, octokit signs with the private one. */
export function appKeys(): { privateKey: string; publicKey: string } {
  return generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
}

// No retries and no write throttling (a second between writes on github.com), so refusals answer at once.
export const LocalOctokit = Octokit.defaults({ request: { retries: 0 }, throttle: { enabled: false } });

/** The status and message of a refused request (the test fails if it succeeds). */
export async function refusal(promise: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof RequestError) return { status: error.status, message: (error.response?.data as { message: string }).message };
    throw error;
  }
  throw new Error("the request succeeded; a refusal was expected");
}

/** A loopback webhook receiver that records each delivery's headers and raw body and answers 202. */
export async function startReceiver(): Promise<{ url: string; received: Array<{ headers: IncomingHttpHeaders; raw: string }>; close: () => Promise<void> }> {
  const received: Array<{ headers: IncomingHttpHeaders; raw: string }> = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      received.push({ headers: request.headers, raw: Buffer.concat(chunks).toString("utf8") });
      response.writeHead(202).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/github`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
