import { verify } from "node:crypto";
import { z } from "zod";
import type { Account, GitHubAppRecord, GitHubStore, InstallationToken } from "./store.js";

/** Who a request is: an App (by JWT), an installation (by its token), a user (by a personal token), or nobody. */
export type Caller =
  | { kind: "app"; app: GitHubAppRecord }
  | { kind: "installation"; token: InstallationToken }
  | { kind: "user"; user: Account }
  | { kind: "anonymous" };

export class AuthError extends Error {}

const JwtHeader = z.object({ alg: z.literal("RS256") });
const JwtClaims = z.object({ iat: z.number().int(), exp: z.number().int(), iss: z.union([z.number().int(), z.string().regex(/^\d+$/)]) });

/** GitHub refuses an App JWT whose `exp` is more than ten minutes ahead; a minute of clock drift is allowed. */
const MAX_JWT_LIFETIME_S = 600;
const DRIFT_S = 60;

function decodePart(part: string): unknown {
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
}

/** Checks an App JWT (RS256 over `header.claims` with the App's key) and returns the App. */
export function appFromJwt(store: GitHubStore, jwt: string, nowS = Math.floor(Date.now() / 1000)): GitHubAppRecord {
  const parts = jwt.split(".");
  let header: unknown;
  let claims: unknown;
  try {
    header = decodePart(parts[0]!);
    claims = decodePart(parts[1]!);
  } catch {
    throw new AuthError("A JSON web token could not be decoded");
  }
  const parsedHeader = JwtHeader.safeParse(header);
  const parsed = JwtClaims.safeParse(claims);
  if (parts.length !== 3 || !parsedHeader.success || !parsed.success) throw new AuthError("A JSON web token could not be decoded");
  const app = store.apps.get(Number(parsed.data.iss));
  if (!app) throw new AuthError(`Integration not found: no App with id ${parsed.data.iss} (the JWT's "iss" must be the App id)`);
  if (!verify("RSA-SHA256", Buffer.from(`${parts[0]}.${parts[1]}`), app.publicKey, Buffer.from(parts[2]!, "base64url"))) {
    throw new AuthError("A JSON web token could not be decoded: its signature does not match the App's public key");
  }
  if (parsed.data.exp <= nowS - DRIFT_S) throw new AuthError("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires");
  if (parsed.data.exp > nowS + MAX_JWT_LIFETIME_S + DRIFT_S) throw new AuthError("'Expiration time' claim ('exp') is too far in the future");
  if (parsed.data.iat > nowS + DRIFT_S) throw new AuthError("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued");
  return app;
}

/**
 * Reads `Authorization` as GitHub does: `token X` or `Bearer X` (a JWT when it has three dot-separated parts),
 * or Basic with the token as password (git and git-lfs send `x-access-token:<token>`). An unknown token is refused.
 */
export function callerOf(store: GitHubStore, header: string | undefined): Caller {
  if (!header) return { kind: "anonymous" };
  const [scheme = "", ...rest] = header.trim().split(/\s+/);
  let secret = rest.join(" ");
  // The signed LFS transfer links carry their own authorisation, checked by the LFS routes.
  if (scheme === "RemoteAuth") return { kind: "anonymous" };
  if (scheme.toLowerCase() === "basic") {
    const decoded = Buffer.from(secret, "base64").toString("utf8");
    secret = decoded.slice(decoded.indexOf(":") + 1);
  } else if (scheme.toLowerCase() !== "token" && scheme.toLowerCase() !== "bearer") {
    throw new AuthError("Bad credentials: use `Authorization: token <token>` or `Bearer <token>`");
  }
  if (secret.split(".").length === 3) return { kind: "app", app: appFromJwt(store, secret) };
  const installation = store.tokens.get(secret);
  if (installation) {
    if (Date.parse(installation.expiresAt) <= Date.now() || !store.installations.has(installation.installation.id)) throw new AuthError("Bad credentials");
    return { kind: "installation", token: installation };
  }
  const user = store.userByToken(secret);
  if (user) return { kind: "user", user };
  throw new AuthError("Bad credentials");
}

/** The account that acts for a caller (an installation acts as its App's bot). */
export function actorOf(caller: Caller): Account | undefined {
  if (caller.kind === "user") return caller.user;
  if (caller.kind === "installation") return caller.token.installation.app.bot;
  return undefined;
}
