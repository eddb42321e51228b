import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * The Hub token, found where huggingface_hub looks: HF_TOKEN, else the token file (HF_TOKEN_PATH, else
 * $HF_HOME/token, else ~/.cache/huggingface/token). Never a command-line value, which `ps` would show.
 */
export function findHubToken(env: NodeJS.ProcessEnv): string | undefined {
  const fromEnv = env.HF_TOKEN?.trim();
  if (fromEnv) return fromEnv;
  const path = env.HF_TOKEN_PATH || join(env.HF_HOME || join(homedir(), ".cache", "huggingface"), "token");
  try {
    return readFileSync(path, "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}
