import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import { ExecutionProviderChoice } from "../projection/execution-provider.js";

/**
 * The environment variables this project reads, validated in one place. README.md lists them all.
 * Empty strings count as unset, as shells and .env files often leave them.
 */
export const Env = z.object({
  /** Execution provider for the projection graph: auto, cpu, cuda or webgpu. */
  SAFE_LORA_EP: ExecutionProviderChoice.default("auto"),
});
export type Env = z.infer<typeof Env>;

export function loadEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const present = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== undefined && value !== ""));
  const parsed = Env.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new SafeLoraError(`environment variable ${issue.path.join(".")}: ${issue.message}`, "usage");
  }
  return parsed.data;
}
