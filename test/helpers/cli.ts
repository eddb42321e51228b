import { spawn, type ChildProcess } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { main } from "../../src/cli/main.js";

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * An environment in which nothing can reach the real Hub by accident: the Hub is a closed local port and
 * there is no token file; the alignment cache is not the user's. Tests that need a Hub pass the local Hub's URL.
 */
export const OFFLINE_ENV: NodeJS.ProcessEnv = {
  HF_ENDPOINT: "http://127.0.0.1:9",
  HF_TOKEN_PATH: "/nonexistent/safe-lora-test-token",
  // The CLI's per-user cache would otherwise be the developer's ~/.cache/safe-lora: one per test process instead.
  SAFE_LORA_CACHE_DIR: join(tmpdir(), `safe-lora-test-cache-${process.pid}`),
};

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

// tsx's loader in this process, not its CLI: the CLI runs the code in a second process and relays signals.
const TSX_LOADER = new URL("../../node_modules/tsx/dist/loader.mjs", import.meta.url).href;
const BIN = fileURLToPath(new URL("../../src/cli/bin.ts", import.meta.url));

export interface SpawnOptions {
  readonly cwd: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Sees stderr so far each time more arrives, with the child to signal. */
  readonly onStderr?: (text: string, child: ChildProcess) => void;
}

/** Runs the CLI from source in a child process, for what an in-process run cannot show: another working directory, a signal. */
export function spawnCli(args: string[], options: SpawnOptions): Promise<CliRun & { signal: NodeJS.Signals | null }> {
  return spawnSource(BIN, args, options);
}

/** Runs a TypeScript file (through tsx) in a child process, in the offline environment. */
export function spawnSource(entry: string, args: string[], options: SpawnOptions): Promise<CliRun & { signal: NodeJS.Signals | null }> {
  const child = spawn(process.execPath, ["--import", TSX_LOADER, entry, ...args], { cwd: options.cwd, env: { ...process.env, ...OFFLINE_ENV, ...options.env } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    options.onStderr?.(stderr, child);
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code: code ?? -1, signal, stdout, stderr }));
  });
}
