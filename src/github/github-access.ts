import { App, Octokit, RequestError } from "octokit";
import { SafeLoraError } from "../errors.js";
import { retryingFetch } from "../hub/retrying-fetch.js";

/**
 * How to reach a GitHub: github.com, a GitHub Enterprise Server, or the project's local stand-in. The REST API
 * and the web host differ on all of them (api.github.com beside github.com, /api/v3 on GHES), and Git LFS lives
 * on the web host, so both are named.
 */
export interface GithubAccess {
  /** The REST API's base URL: `https://api.github.com`, or `https://<host>/api/v3` on GitHub Enterprise. */
  readonly apiUrl: string;
  /** The web host: pull request links, clone URLs and the LFS endpoint (`{webUrl}/{owner}/{repo}.git/info/lfs`). */
  readonly webUrl: string;
  /** The installation token for repos of `owner` (the App is installed per account). */
  installationToken(owner: string): Promise<string>;
  /** Drops what is known of `owner`'s installation after GitHub refused its token (uninstalled, or installed anew). */
  forgetInstallation?(owner: string): void;
  /** Injectable for tests; wrapped in the project's retrying fetch. */
  readonly fetch?: typeof fetch;
  /** The largest file git data may hold outside LFS: 100 MB on github.com; a GitHub Enterprise admin may set another. */
  readonly maxBlobBytes?: number;
}

/** GitHub serves no blob over 100 MB through its API (and refuses to store one): such a file is only readable from LFS. */
export const MAX_BLOB_BYTES = 100 * 1024 * 1024;

export const GITHUB_API_URL = "https://api.github.com";
export const GITHUB_WEB_URL = "https://github.com";

const trim = (url: string) => url.replace(/\/+$/, "");

/**
 * The web host of a REST API: github.com for api.github.com, `https://<host>` for GitHub Enterprise's
 * `https://<host>/api/v3`, and the same origin for anything else (the local stand-in serves both).
 */
export function githubWebUrl(apiUrl: string): string {
  const url = new URL(trim(apiUrl));
  if (url.hostname === "api.github.com") return GITHUB_WEB_URL;
  return `${url.origin}${url.pathname.replace(/\/api\/v3$/, "").replace(/\/+$/, "")}`;
}

const retrying = new WeakMap<typeof fetch, typeof fetch>();

/** The fetch every GitHub call goes through: transient failures (network, 429, 5xx) retried as for the Hub. */
export function githubFetch(access: Pick<GithubAccess, "fetch">): typeof fetch {
  const inner = access.fetch ?? fetch;
  let wrapped = retrying.get(inner);
  if (!wrapped) {
    wrapped = retryingFetch(inner);
    retrying.set(inner, wrapped);
  }
  return wrapped;
}

/** Octokit's own retry and throttling are off: retryingFetch already retries, and one policy is easier to reason about. */
function octokitOptions(access: Pick<GithubAccess, "apiUrl" | "fetch">) {
  return {
    baseUrl: trim(access.apiUrl),
    request: { fetch: githubFetch(access) },
    retry: { enabled: false },
    throttle: { enabled: false },
    // Octokit logs deprecations and failures on console by default; the bot logs what matters itself.
    log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
  };
}

/** An Octokit acting with `token` (an installation token), or anonymously. */
export function githubOctokit(access: Pick<GithubAccess, "apiUrl" | "fetch">, token: string | null): Octokit {
  return new Octokit({ ...octokitOptions(access), ...(token ? { auth: token } : {}) });
}

/** The App's credentials, from which installation tokens are made. */
export interface AppCredentials {
  readonly appId: string | number;
  /** The App's private key (PEM); never logged. */
  readonly privateKey: string;
}

/**
 * Installation tokens of a GitHub App: the installation of an account is looked up with the App's JWT, and
 * octokit's App caches each installation's token until shortly before it expires (an hour).
 */
export function appInstallationTokens(access: Pick<GithubAccess, "apiUrl" | "fetch">, credentials: AppCredentials): {
  readonly app: App;
  installationToken(owner: string): Promise<string>;
  forgetInstallation(owner: string): void;
} {
  const app = new App({ appId: credentials.appId, privateKey: credentials.privateKey, Octokit: Octokit.defaults(octokitOptions(access)) });
  const installations = new Map<string, Promise<number>>();
  const installationOf = (owner: string) => {
    let id = installations.get(owner.toLowerCase());
    if (!id) {
      // The App's own list, read with its JWT: an account has at most one installation of an App.
      id = (async () => {
        for await (const { installation } of app.eachInstallation.iterator()) {
          if (installation.account && "login" in installation.account && installation.account.login.toLowerCase() === owner.toLowerCase()) return installation.id;
        }
        throw new SafeLoraError(`the GitHub App is not installed on ${owner}; install it there (or add the repo to its installation) first`, "hub-access");
      })().catch((error: unknown) => {
        installations.delete(owner.toLowerCase());
        throw githubError({ error, repo: owner, action: null, access });
      });
      installations.set(owner.toLowerCase(), id);
    }
    return id;
  };
  return {
    app,
    forgetInstallation: (owner) => installations.delete(owner.toLowerCase()),
    async installationToken(owner) {
      const id = await installationOf(owner);
      let auth: { token?: unknown };
      try {
        auth = (await (await app.getInstallationOctokit(id)).auth({ type: "installation" })) as { token?: unknown };
      } catch (error) {
        // The installation may be gone (uninstalled, or moved): look it up afresh next time.
        installations.delete(owner.toLowerCase());
        throw githubError({ error, repo: owner, action: null, access });
      }
      if (typeof auth.token !== "string") throw new SafeLoraError(`GitHub gave no installation token for ${owner}`, "hub-unavailable");
      return auth.token;
    },
  };
}

/** The owner part of `owner/name`. */
export function ownerOf(repo: string): string {
  const slash = repo.indexOf("/");
  return slash < 0 ? repo : repo.slice(0, slash);
}

/** `owner/name` split as octokit's parameters take it; anything else is refused before a request is made. */
export function repoParams(repo: string): { owner: string; repo: string } {
  const match = /^([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))\/([A-Za-z0-9._-]{1,100})$/.exec(repo);
  if (!match || match[2] === "." || match[2] === "..") throw new SafeLoraError(`"${repo.slice(0, 200)}" is not a GitHub repository; name it as owner/name`, "usage");
  return { owner: match[1]!, repo: match[2]! };
}

/** A ref's path as the git refs API takes it (`heads/safe-lora/a`): each segment encoded, the slashes kept. */
export function refPath(ref: string): string {
  return ref.split("/").map(encodeURIComponent).join("/");
}

/** GitHub's own words for a failure, cut short: its message, never the request (which holds the token). */
function detailOf(error: RequestError): string {
  return error.message.replace(/\s+/g, " ").slice(0, 200);
}

/** A rate-limit refusal comes as 403 (or 429) with no requests left: the forge is busy, not refusing the bot. */
function isRateLimited(error: RequestError): boolean {
  const headers = error.response?.headers ?? {};
  return error.status === 429 || (error.status === 403 && (headers["x-ratelimit-remaining"] === "0" || /rate limit/i.test(error.message)));
}

/**
 * A GitHub failure as the SafeLoraError the bot decides on, with the same codes as the Hub's: 404 (and 422
 * for a sha that names nothing) `hub-not-found`, 401 and 403 `hub-access`, no answer, rate limits and 5xx
 * `hub-unavailable` (retried). A refusal of one of the bot's own writes (`action`) says what the App lacks.
 * A SafeLoraError passes as it is; anything else is a bug and passes too.
 */
export function githubError(params: {
  readonly error: unknown;
  /** The repo (or owner) the call was about. */
  readonly repo: string;
  /** What the bot was doing, for a write of its own; null for reads. */
  readonly action: string | null;
  readonly access: Pick<GithubAccess, "apiUrl">;
}): unknown {
  const { error, repo, action, access } = params;
  if (error instanceof SafeLoraError || !(error instanceof RequestError)) return error;
  const detail = detailOf(error);
  const at = trim(access.apiUrl);
  if (isRateLimited(error)) return new SafeLoraError(`${repo}: GitHub (${at}) is rate limiting the App (${detail}); try again later`, "hub-unavailable", { cause: error });
  switch (error.status) {
    case 401:
      return new SafeLoraError(`${repo}: GitHub (${at}) refused the App's installation token (401: ${detail}); the App may have been uninstalled there, or APP_ID and the private key do not match`, "hub-access", { cause: error });
    case 403:
      return new SafeLoraError(
        action
          ? `${repo}: GitHub did not let the App ${action} (403: ${detail}); its installation needs contents, pull requests and issues write permission on the repo`
          : `${repo}: the App may not read it (403: ${detail}); add the repo to the App's installation`,
        "hub-access",
        { cause: error },
      );
    case 404:
      return new SafeLoraError(`${repo}: not found on GitHub (${at}) (${detail}); check the name and the revision, and that the App is installed on the repo`, "hub-not-found", { cause: error });
    case 409:
      // An empty repository answers 409 to git data reads.
      return new SafeLoraError(`${repo}: GitHub answered 409 (${detail}); the repository may be empty`, "hub-not-found", { cause: error });
    default:
      if (error.status >= 500) return new SafeLoraError(`${repo}: GitHub (${at}) did not answer (${error.status}: ${detail}); try again later`, "hub-unavailable", { cause: error });
      return error;
  }
}
