import { createPrivateKey } from "node:crypto";
import { basename, dirname } from "node:path";
import { SafeLoraError } from "../errors.js";
import { LocalFolder } from "../storage/local-folder.js";

/** What the GitHub App is run with: its id, key and webhook secret (registered from app.yml), and where GitHub's API is. */
export interface GithubAppSettings {
  readonly appId: number;
  /** The App's private key (PEM). Never logged. */
  readonly privateKey: string;
  readonly webhookSecret: string;
  /** GitHub's REST API; unset: api.github.com. GitHub Enterprise's `https://<host>/api/v3`, or a local stand-in. */
  readonly baseUrl?: string;
  /** The App's slug (its bot is `<slug>[bot]`); unset: asked of GitHub (`GET /app`) when the webhook route starts. */
  readonly slug?: string;
}

/** The App's environment variables, as src/config/env.ts validated them. */
export interface GithubAppVariables {
  readonly APP_ID?: number | undefined;
  readonly PRIVATE_KEY?: string | undefined;
  readonly PRIVATE_KEY_PATH?: string | undefined;
  readonly WEBHOOK_SECRET?: string | undefined;
  readonly GITHUB_API_URL?: string | undefined;
  readonly GITHUB_APP_SLUG?: string | undefined;
}

/** A PEM key is a few KB; a larger file is not one. */
const MAX_KEY_BYTES = 16 * 1024;

/** The variables that together switch the App on (README "The GitHub App"). */
export const GITHUB_APP_REQUIRED = "APP_ID, PRIVATE_KEY or PRIVATE_KEY_PATH, WEBHOOK_SECRET";

async function readKeyFile(path: string): Promise<string> {
  try {
    return await new LocalFolder(dirname(path)).readText(basename(path), { maxBytes: MAX_KEY_BYTES });
  } catch (error) {
    const why = error instanceof SafeLoraError && error.code === "limit-exceeded" ? `is larger than ${MAX_KEY_BYTES} bytes, so it is no PEM key` : "cannot be read";
    throw new SafeLoraError(`PRIVATE_KEY_PATH ${path} ${why}; point it at the .pem file GitHub gave when the App's key was generated`, "usage");
  }
}

/**
 * The App's settings, or null when none of its variables is set (the bot then serves the Hub only). Some but
 * not all of them set is a usage error naming what is missing, so that a typo does not silently turn the App
 * off. The key is checked to parse as a private key; no message quotes it.
 */
export async function githubAppSettings(vars: GithubAppVariables): Promise<GithubAppSettings | null> {
  const hasKey = vars.PRIVATE_KEY !== undefined || vars.PRIVATE_KEY_PATH !== undefined;
  const given = [vars.APP_ID !== undefined, hasKey, vars.WEBHOOK_SECRET !== undefined];
  if (given.every((set) => !set)) return null;
  const missing = [vars.APP_ID === undefined && "APP_ID", !hasKey && "PRIVATE_KEY or PRIVATE_KEY_PATH", vars.WEBHOOK_SECRET === undefined && "WEBHOOK_SECRET"].filter(Boolean);
  if (missing.length > 0) {
    throw new SafeLoraError(`the GitHub App is half configured: ${missing.join(", ")} unset; set all of ${GITHUB_APP_REQUIRED} to serve GitHub, or none of them to serve the Hub only`, "usage");
  }
  if (vars.PRIVATE_KEY !== undefined && vars.PRIVATE_KEY_PATH !== undefined) {
    throw new SafeLoraError("both PRIVATE_KEY and PRIVATE_KEY_PATH are set; set one of them", "usage");
  }
  // A key pasted into a single-line variable (.env files, CI secrets) arrives with literal "\n"s.
  const privateKey = vars.PRIVATE_KEY !== undefined ? vars.PRIVATE_KEY.replace(/\\n/g, "\n") : await readKeyFile(vars.PRIVATE_KEY_PATH!);
  try {
    createPrivateKey(privateKey);
  } catch {
    const where = vars.PRIVATE_KEY !== undefined ? "PRIVATE_KEY" : `PRIVATE_KEY_PATH ${vars.PRIVATE_KEY_PATH}`;
    throw new SafeLoraError(`${where} is not a PEM private key; use the .pem file GitHub gave when the App's key was generated (-----BEGIN RSA PRIVATE KEY----- …)`, "usage");
  }
  return {
    appId: vars.APP_ID!,
    privateKey,
    webhookSecret: vars.WEBHOOK_SECRET!,
    ...(vars.GITHUB_API_URL ? { baseUrl: vars.GITHUB_API_URL.replace(/\/+$/, "") } : {}),
    ...(vars.GITHUB_APP_SLUG ? { slug: vars.GITHUB_APP_SLUG } : {}),
  };
}
