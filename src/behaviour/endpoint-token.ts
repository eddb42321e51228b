import { SafeLoraError } from "../errors.js";
import type { InferenceEndpointConfig } from "./schema.js";

/**
 * The token to send to endpoint `name`: the value of the variable its config's `tokenEnv` names, or null when it
 * names none. HF_TOKEN is never read here: the bot's Hub token goes to no endpoint unless the operator names it.
 */
export function endpointToken(name: string, config: InferenceEndpointConfig, env: NodeJS.ProcessEnv = process.env): string | null {
  if (config.tokenEnv === undefined) return null;
  const token = env[config.tokenEnv];
  if (!token) {
    throw new SafeLoraError(`BOT_CONFIG behaviour.endpoints.${name}.tokenEnv names ${config.tokenEnv}, which is not set: set it, or remove tokenEnv to send no token`, "usage");
  }
  return token;
}
