import { SafeLoraError } from "../errors.js";
import { isRepoId } from "../hub/repo-ref.js";
import { quotePath, repoPathProblem, REPO_ROOT } from "../storage/repo-files.js";

/** Where an adapter asked for by id lives on the Hub. */
export interface AdapterLocation {
  /** The id as the client wrote it: the cache key and what answers name. */
  readonly id: string;
  readonly repo: string;
  /** A commit sha, a branch, or `refs/pr/N`. */
  readonly revision: string;
  /** REPO_ROOT, or the folder inside the repo holding adapter_config.json. */
  readonly folder: string;
}

export const MAX_ADAPTER_ID_CHARS = 500;

const COMMIT_SHA = /^[0-9a-f]{40}$/;
// A branch or tag name in one URL segment: a slash would be read as the start of the folder.
const BRANCH = /^[A-Za-z0-9_][\w.-]*$/;
const PR_REF = /^refs\/pr\/[1-9][0-9]*$/;

/** Whether a revision is a commit: what a cached adapter may be kept under for good (a branch moves). */
export const isCommitSha = (revision: string): boolean => COMMIT_SHA.test(revision);

function refused(id: string, why: string): SafeLoraError {
  return new SafeLoraError(
    `adapter id ${quotePath(id)}: ${why}; write org/name@<revision> or org/name@<revision>/<folder>, the revision a commit sha, a branch or refs%2Fpr%2FN`,
    "usage",
  );
}

/**
 * Parses an adapter id: `org/name` (main), `org/name@<revision>` for an adapter at the repo's root, or
 * `org/name@<revision>/<folder path>` for one in a folder. The revision is one path segment, so a branch with a
 * slash, or a pull request's `refs/pr/3`, is written URL-encoded (`refs%2Fpr%2F3`), as the Hub's own URLs do.
 * Every part is checked before it becomes a URL the endpoint fetches with its token.
 */
export function parseAdapterId(id: string): AdapterLocation {
  if (id.length > MAX_ADAPTER_ID_CHARS) throw refused(id, `longer than ${MAX_ADAPTER_ID_CHARS} characters`);
  const at = id.indexOf("@");
  const repo = at === -1 ? id : id.slice(0, at);
  if (!isRepoId(repo)) throw refused(id, `${quotePath(repo)} is not a Hub repo id like org/name`);
  if (at === -1) return { id, repo, revision: "main", folder: REPO_ROOT };
  const rest = id.slice(at + 1);
  const slash = rest.indexOf("/");
  const rawRevision = slash === -1 ? rest : rest.slice(0, slash);
  let revision: string;
  try {
    revision = decodeURIComponent(rawRevision);
  } catch {
    throw refused(id, `the revision ${quotePath(rawRevision)} is not valid URL encoding`);
  }
  if (!COMMIT_SHA.test(revision) && !BRANCH.test(revision) && !PR_REF.test(revision)) {
    throw refused(id, `the revision ${quotePath(revision)} is neither a commit sha, a branch name nor refs/pr/N`);
  }
  if (slash === -1) return { id, repo, revision, folder: REPO_ROOT };
  const folder = rest.slice(slash + 1);
  const problem = repoPathProblem(folder);
  if (problem) throw refused(id, `the folder ${quotePath(folder)} is not a path inside the repo (${problem})`);
  return { id, repo, revision, folder };
}
