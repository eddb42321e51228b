import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

type Payload = Record<string, any>;

/** @octokit/webhooks-examples' real payloads (GitHub's documented examples), by event name. */
const definitions = JSON.parse(readFileSync(createRequire(import.meta.url).resolve("@octokit/webhooks-examples/api.github.com/index.json"), "utf8")) as Array<{
  name: string;
  examples: Payload[];
}>;

/**
 * A copy of the first example of `name` that `match` accepts (every example when absent), to change freely.
 * Most examples carry no `installation`, which every delivery to an App has: it is added when missing.
 */
export function example(name: string, match: (payload: Payload) => boolean = () => true): Payload {
  const found = definitions.find((definition) => definition.name === name)?.examples.find(match);
  if (!found) throw new Error(`no ${name} example matches in @octokit/webhooks-examples`);
  const copy = structuredClone(found);
  copy.installation ??= { id: 4242, node_id: "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg==" };
  return copy;
}

/** The example push to the default branch (`master`, adding README.md), changed to add `added` instead. */
export function pushAdding(added: string[]): Payload {
  const push = example("push", (payload) => payload.ref === "refs/heads/master");
  push.commits[0].added = added;
  return push;
}

/** A sender that is the App's own bot (`<slug>[bot]`, type Bot), as GitHub names it in every event it causes. */
export const appBot = (slug: string) => ({ login: `${slug}[bot]`, id: 41898282, node_id: "MDM6Qm90NDE4OTgyODI=", type: "Bot", site_admin: false });
