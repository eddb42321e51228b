/**
 * An idempotency key: the job's kind, its forge and the parts that say which event it is for, each part
 * percent-encoded and joined with "|". Encoded parts never contain "|" or ":", so no two events share a key
 * (`acme/x` on the Hub and on GitHub differ by the forge part) and every key is a valid BullMQ custom job id,
 * which must not contain ":".
 */
export function jobKey(kind: string, forge: string, ...parts: readonly string[]): string {
  return [kind, forge, ...parts].map((part) => encodeURIComponent(part)).join("|");
}

/**
 * The key, in jobKey's format, of a job stored by the first release (its keys had no forge and held ":"),
 * from its kind, old key and payload; null when the bot cannot tell (a damaged or unknown job). The bot
 * supplies it to the queue's upgrade: the keys are the bot's own.
 */
export type LegacyJobKey = (job: { readonly kind: string; readonly key: string; readonly repo: string; readonly payload: unknown }) => string | null;
