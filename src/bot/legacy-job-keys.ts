import type { LegacyJobKey } from "../queue/job-key.js";
import { commandKey } from "./command-job.js";
import { commandPatchKey, patchKey, PatchPayload } from "./patch-job.js";
import { scanKey } from "./scan-job.js";

/**
 * The idempotency key, in today's format, of a job stored by the first release (3588d4f), whose keys had no
 * forge (every repo was on the Hub) and were joined with ":" — `scan:<repo>@<sha>[:start]`,
 * `patch:<repo>:<folder>:<filesKey>:<configKey>`, `patch:<repo>:<folder>:comment:<commentId>`,
 * `command:<repo>:<commentId>`. Upgrading a DATA_DIR renames its jobs with it, so that the same event
 * delivered again after the upgrade finds its job instead of making a second. Null: not one of those.
 */
export const legacyJobKey: LegacyJobKey = ({ kind, key, repo, payload }) => {
  const rest = (prefix: string) => (key.startsWith(prefix) ? key.slice(prefix.length) : null);
  switch (kind) {
    case "scan": {
      const at = rest(`scan:${repo}@`);
      if (!at) return null;
      const start = at.endsWith(":start");
      return scanKey({ forge: "hub", repo, sha: start ? at.slice(0, -":start".length) : at, reason: start ? "start" : "push" });
    }
    case "command": {
      const commentId = rest(`command:${repo}:`);
      return commentId ? commandKey({ forge: "hub", repo, commentId }) : null;
    }
    case "patch":
      return legacyPatchKey(key, repo, payload);
    default:
      return null;
  }
};

function legacyPatchKey(key: string, repo: string, payload: unknown): string | null {
  const parsed = PatchPayload.safeParse(payload);
  if (!parsed.success) return null;
  const { folder, command } = parsed.data;
  const prefix = `patch:${repo}:${folder}:`;
  if (!key.startsWith(prefix)) return null;
  const rest = key.slice(prefix.length);
  if (command && rest === `comment:${command.commentId}`) return commandPatchKey({ forge: "hub", repo, folder, commentId: command.commentId });
  // The config key is 16 hex digits, and never holds ":"; the files key before it may.
  const split = rest.lastIndexOf(":");
  if (split <= 0) return null;
  return patchKey({ forge: "hub", repo, folder, filesKey: rest.slice(0, split), configKey: rest.slice(split + 1) });
}
