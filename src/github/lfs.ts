import { createHash } from "node:crypto";
import picomatch from "picomatch";
import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import { githubFetch, type GithubAccess } from "./github-access.js";

/** A Git LFS pointer: what git stores in place of a tracked file (git-lfs spec v1). */
export interface LfsPointer {
  /** sha256 of the object, hex. */
  readonly oid: string;
  readonly size: number;
}

/** The spec caps a pointer file at 1024 bytes: a larger blob is never read as one. */
export const MAX_POINTER_BYTES = 1024;

const POINTER_VERSION = "version https://git-lfs.github.com/spec/v1";

/** The pointer a blob holds, or null when it is an ordinary file. Strict: a file that merely looks like one stays a file. */
export function parseLfsPointer(bytes: Uint8Array): LfsPointer | null {
  if (bytes.byteLength > MAX_POINTER_BYTES) return null;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
  const lines = text.split("\n");
  if (lines[0] !== POINTER_VERSION || lines.at(-1) !== "") return null;
  let oid: string | null = null;
  let size: number | null = null;
  for (const line of lines.slice(1, -1)) {
    const oidMatch = /^oid sha256:([0-9a-f]{64})$/.exec(line);
    const sizeMatch = /^size (0|[1-9][0-9]{0,15})$/.exec(line);
    if (oidMatch) oid = oidMatch[1]!;
    else if (sizeMatch) size = Number(sizeMatch[1]);
    // Other keys (ext-*) are allowed by the spec and carry nothing this reader needs.
    else if (!/^[a-z0-9.-]+ \S/.test(line)) return null;
  }
  return oid !== null && size !== null && Number.isSafeInteger(size) ? { oid, size } : null;
}

/** The pointer file git-lfs itself would commit for an object. */
export function formatLfsPointer(pointer: LfsPointer): string {
  return `${POINTER_VERSION}\noid sha256:${pointer.oid}\nsize ${pointer.size}\n`;
}

/** The pointer of some bytes. */
export function lfsPointerOf(bytes: Uint8Array): LfsPointer {
  return { oid: createHash("sha256").update(bytes).digest("hex"), size: bytes.byteLength };
}

/**
 * Which paths a `.gitattributes` sends through LFS (`filter=lfs`), by git's rules for the root file: the last
 * line whose pattern matches decides, a pattern without a slash matches the name at any depth, one with a
 * slash is anchored at the root. Nested `.gitattributes` files and macros other than `lfs`'s are not read.
 */
export function lfsTracker(gitattributes: string): (path: string) => boolean {
  const rules: Array<{ matches: (path: string) => boolean; lfs: boolean }> = [];
  for (const raw of gitattributes.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [pattern, ...attributes] = line.split(/\s+/);
    let lfs: boolean | null = null;
    for (const attribute of attributes) {
      if (attribute === "filter=lfs") lfs = true;
      else if (attribute === "-filter" || attribute === "!filter" || (attribute.startsWith("filter=") && attribute !== "filter=lfs")) lfs = false;
    }
    if (lfs === null || !pattern || pattern.startsWith("!")) continue;
    const anchored = pattern.replace(/^\//, "");
    const isMatch = anchored.includes("/") ? picomatch(anchored.replace(/\/$/, "/**"), { dot: true }) : picomatch(anchored, { dot: true, basename: true });
    rules.push({ matches: (path) => isMatch(path), lfs });
  }
  return (path) => {
    for (let i = rules.length - 1; i >= 0; i--) if (rules[i]!.matches(path)) return rules[i]!.lfs;
    return false;
  };
}

/** An action of the batch API's answer: where to send or fetch an object, and the headers to send with it. */
const LfsAction = z.looseObject({
  href: z.url().max(8192),
  header: z.record(z.string(), z.string().max(8192)).optional(),
});
export type LfsAction = z.infer<typeof LfsAction>;

const LfsBatchAnswer = z.looseObject({
  transfer: z.string().optional(),
  objects: z
    .array(
      z.looseObject({
        oid: z.string(),
        size: z.number().int().nonnegative(),
        actions: z.looseObject({ download: LfsAction.optional(), upload: LfsAction.optional(), verify: LfsAction.optional() }).optional(),
        error: z.looseObject({ code: z.number().int(), message: z.string().max(1000) }).optional(),
      }),
    )
    .max(1000),
});

/** The batch API's answer is a few hundred bytes an object. */
const MAX_BATCH_ANSWER_BYTES = 1024 * 1024;

/** The LFS server of one repo: `{webUrl}/{owner}/{repo}.git/info/lfs`, authenticated with the installation token. */
export class LfsClient {
  constructor(
    private readonly access: Pick<GithubAccess, "webUrl" | "fetch">,
    /** `owner/name`. */
    private readonly repo: string,
    private readonly token: string,
  ) {}

  private get endpoint(): string {
    return `${this.access.webUrl.replace(/\/+$/, "")}/${this.repo}.git/info/lfs`;
  }

  /** Git's credential form for an installation token. */
  private get authorization(): string {
    return `Basic ${Buffer.from(`x-access-token:${this.token}`).toString("base64")}`;
  }

  private failure(what: string, detail: string, status: number | null): SafeLoraError {
    const code = status === 404 || status === 410 ? "hub-not-found" : status === 401 || status === 403 ? "hub-access" : "hub-unavailable";
    return new SafeLoraError(`${this.repo}: Git LFS could not ${what} (${detail})${code === "hub-unavailable" ? "; try again later" : ""}`, code);
  }

  /** One object's action for `operation`; null when an upload is not needed (the server has the object). */
  private async batch(operation: "download" | "upload", pointer: LfsPointer): Promise<{ action: LfsAction | null; verify: LfsAction | null }> {
    const what = `${operation} the object ${pointer.oid.slice(0, 12)}`;
    let response: Response;
    try {
      response = await githubFetch(this.access)(`${this.endpoint}/objects/batch`, {
        method: "POST",
        headers: { Accept: "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json", Authorization: this.authorization },
        body: JSON.stringify({ operation, transfers: ["basic"], objects: [pointer], hash_algo: "sha256" }),
      });
    } catch (error) {
      throw this.failure(what, `no answer from ${this.endpoint}: ${(error as Error).message}`, null);
    }
    const text = await response.text();
    if (!response.ok) throw this.failure(what, `the batch API answered ${response.status}: ${text.slice(0, 200)}`, response.status);
    if (text.length > MAX_BATCH_ANSWER_BYTES) throw this.failure(what, `the batch API's answer is ${text.length} bytes`, null);
    let parsed;
    try {
      parsed = LfsBatchAnswer.parse(JSON.parse(text));
    } catch (error) {
      throw this.failure(what, `the batch API's answer does not read as one: ${(error as Error).message.slice(0, 200)}`, null);
    }
    if (parsed.transfer !== undefined && parsed.transfer !== "basic") throw this.failure(what, `the server chose the transfer "${parsed.transfer.slice(0, 40)}", not basic`, null);
    const object = parsed.objects.find((o) => o.oid === pointer.oid);
    if (!object) throw this.failure(what, "the batch API's answer does not name the object", null);
    if (object.error) throw this.failure(what, `${object.error.code}: ${object.error.message}`, object.error.code);
    const action = (operation === "download" ? object.actions?.download : object.actions?.upload) ?? null;
    if (operation === "download" && !action) throw this.failure(what, "the batch API gave no download action", null);
    return { action, verify: object.actions?.verify ?? null };
  }

  /** Where to read an object from (its href may be a storage URL of its own, with headers of its own). */
  download(pointer: LfsPointer): Promise<LfsAction> {
    return this.batch("download", pointer).then(({ action }) => action!);
  }

  /** Uploads the bytes (unless the server has them) and verifies them when the server asks; returns their pointer. */
  async upload(bytes: Uint8Array): Promise<LfsPointer> {
    const pointer = lfsPointerOf(bytes);
    const { action, verify } = await this.batch("upload", pointer);
    if (!action) return pointer;
    const what = `upload the object ${pointer.oid.slice(0, 12)}`;
    const fetch = githubFetch(this.access);
    const put = await fetch(action.href, { method: "PUT", headers: { "Content-Type": "application/octet-stream", ...action.header }, body: bytes }).catch((error: unknown) => {
      throw this.failure(what, `no answer: ${(error as Error).message}`, null);
    });
    await put.arrayBuffer().catch(() => undefined);
    if (!put.ok) throw this.failure(what, `the upload answered ${put.status}`, put.status);
    if (verify) {
      const verified = await fetch(verify.href, {
        method: "POST",
        headers: { Accept: "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json", ...verify.header },
        body: JSON.stringify(pointer),
      }).catch((error: unknown) => {
        throw this.failure(what, `no answer to the verify call: ${(error as Error).message}`, null);
      });
      await verified.arrayBuffer().catch(() => undefined);
      if (!verified.ok) throw this.failure(what, `the verify call answered ${verified.status}`, verified.status);
    }
    return pointer;
  }
}
