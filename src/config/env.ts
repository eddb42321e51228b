import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import { ExecutionProviderChoice } from "../projection/execution-provider.js";

/**
 * The environment variables this project reads, validated in one place. README.md lists them all.
 * Empty strings count as unset, as shells and .env files often leave them. The Hub token is read by
 * hub/token.ts (HF_TOKEN, HF_TOKEN_PATH, HF_HOME) so that it never lands in a parsed config object.
 */
export const Env = z.object({
  /** Execution provider for the projection graph: auto, cpu, cuda or webgpu. */
  SAFE_LORA_EP: ExecutionProviderChoice.default("auto"),
  /** The Hub's base URL, as in the Python client. */
  HF_ENDPOINT: z.url({ protocol: /^https?$/ }).default("https://huggingface.co"),
  /** Where the bot and the CLI keep state: the alignment cache, later the job queue. */
  DATA_DIR: z.string().default("./.safe-lora"),
  /** Size limit of the alignment cache in GB (10^9 bytes). */
  SAFE_LORA_CACHE_GB: z.coerce.number().positive().default(20),
});
export type Env = z.infer<typeof Env>;

export function loadEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const present = Object.fromEntries(Object.entries(source).filter(([key, value]) => value !== undefined && value !== "" && key in Env.shape));
  const parsed = Env.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new SafeLoraError(`environment variable ${issue.path.join(".")}: ${issue.message}`, "usage");
  }
  return parsed.data;
}
