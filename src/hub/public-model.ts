import { SafeLoraError } from "../errors.js";
import type { HubAccess } from "./hub-access.js";
import { fetchModelInfo } from "./hub-repo-files.js";

/**
 * Whether anyone may see the model `id`: its info is asked for without any token, so a private repo the
 * caller's token happens to reach answers "no", exactly like a repo that does not exist. Gated models are
 * public here — their card and file list are open to all; their conditions are accepted per account.
 * A Hub that is down rejects (transient), rather than answering "no".
 */
export async function isPublicModel(access: HubAccess, id: string): Promise<boolean> {
  const anonymous: HubAccess = { hubUrl: access.hubUrl, ...(access.fetch ? { fetch: access.fetch } : {}) };
  try {
    const info = await fetchModelInfo(anonymous, { id, revision: "main" });
    return info.private !== true;
  } catch (error) {
    if (error instanceof SafeLoraError && (error.code === "hub-access" || error.code === "hub-not-found")) return false;
    throw error;
  }
}
