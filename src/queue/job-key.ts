/**
 * An idempotency key: the job's kind, its forge and the parts that say which event it is for, each part
 * percent-encoded and joined with "|". Encoded parts never contain "|" or ":", so no two events share a key
 * (`acme/x` on the Hub and on GitHub differ by the forge part) and every key is a valid BullMQ custom job id,
 * which must not contain ":".
 */
export function jobKey(kind: string, forge: string, ...parts: readonly string[]): string {
  return [kind, forge, ...parts].map((part) => encodeURIComponent(part)).join("|");
}
