import { readFileSync, statSync } from "node:fs";
import { SafeLoraError } from "../errors.js";
import { PromptSet } from "./schema.js";
// Imported rather than read from a path, so that tsc copies it into dist/ beside this module (the Docker image runs dist/).
import defaultSet from "./prompt-sets/safe-lora-default.json" with { type: "json" };

/** A prompt set file's cap: 200 prompts of each kind at 4000 characters each stay well under it. */
export const MAX_PROMPT_SET_BYTES = 4 * 1024 * 1024;

/** The project's own prompt set (`src/behaviour/prompt-sets/safe-lora-default.json`). */
export const DEFAULT_PROMPT_SET: PromptSet = PromptSet.parse(defaultSet);

/**
 * The prompt set the check asks: the file BOT_CONFIG `behaviourPromptSet` names, or the project's own for null.
 * A file that cannot be read or does not fit the schema is the operator's to fix, and the message says where.
 */
export function loadPromptSet(path: string | null): PromptSet {
  if (path === null) return DEFAULT_PROMPT_SET;
  let text: string;
  try {
    const size = statSync(path).size;
    if (size > MAX_PROMPT_SET_BYTES) {
      throw new SafeLoraError(`prompt set ${path} is ${size} bytes, more than the ${MAX_PROMPT_SET_BYTES} a prompt set may be; ask fewer or shorter prompts`, "usage");
    }
    text = readFileSync(path, "utf8");
  } catch (error) {
    if (error instanceof SafeLoraError) throw error;
    throw new SafeLoraError(`prompt set ${path} cannot be read (${(error as Error).message}); check BOT_CONFIG behaviourPromptSet`, "usage", { cause: error });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new SafeLoraError(`prompt set ${path} is not valid JSON: ${(error as Error).message}`, "usage", { cause: error });
  }
  const parsed = PromptSet.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = [...issue.path.map(String), ...(issue.code === "unrecognized_keys" ? [issue.keys[0]!] : [])].join(".");
    throw new SafeLoraError(`prompt set ${path}: ${where ? `${where}: ` : ""}${issue.message} (the schema is PromptSet in src/behaviour/schema.ts)`, "usage");
  }
  return parsed.data;
}
