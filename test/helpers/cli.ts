import { main } from "../../src/cli/main.js";

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * An environment in which nothing can reach the real Hub by accident: the Hub is a closed local port and
 * there is no token file. Tests that need a Hub pass the local Hub's URL.
 */
export const OFFLINE_ENV: NodeJS.ProcessEnv = { HF_ENDPOINT: "http://127.0.0.1:9", HF_TOKEN_PATH: "/nonexistent/safe-lora-test-token" };

/** Runs the CLI in-process, as `safe-lora <args>`, capturing its output. */
export async function runCli(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const env = { ...OFFLINE_ENV, ...extraEnv };
  let stdout = "";
  let stderr = "";
  const code = await main(args, {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    stderrIsTTY: false,
    env,
  });
  return { code, stdout, stderr };
}
