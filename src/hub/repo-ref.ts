import { SafeLoraError } from "../errors.js";

/** A model repo on the Hub and the revision asked for (a branch, tag, `refs/pr/N` or commit sha). */
export interface RepoRef {
  readonly id: string;
  readonly revision: string;
}

// Both parts start with a letter, digit or underscore: a part that is `.` (or `..`) would be normalised away
// by the URL parser, sending the request — and the token — to another endpoint.
const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9_][\w.-]*$/;

/** The one check of a Hub repo id (`org/name`), wherever one comes from: flags, configs, webhooks, forms. */
export function isRepoId(value: string): boolean {
  return value.length <= 200 && REPO_ID.test(value) && !value.includes("..") && !value.endsWith(".git");
}

/** Parses `org/name` or `org/name@revision`; the default revision is `main`. */
export function parseRepoRef(text: string, flag: string): RepoRef {
  const at = text.indexOf("@");
  const id = at === -1 ? text : text.slice(0, at);
  const revision = at === -1 ? "main" : text.slice(at + 1);
  if (!isRepoId(id) || revision === "") {
    throw new SafeLoraError(`${flag} ${text}: not an existing folder, nor a Hub repo id like org/name or org/name@revision`, "usage");
  }
  return { id, revision };
}
