import type { SafeLoraErrorCode } from "../errors.js";

/** Exit codes scripts can rely on (README.md, "Exit codes"). */
export const ExitCode = {
  ok: 0,
  /** A bug: anything that is not a SafeLoraError. Please report it. */
  internal: 1,
  /** The command line or environment is wrong: bad flag, bad value, output folder in the way. */
  usage: 2,
  /** The inputs cannot be patched: malformed or unsupported files, missing tensors, mismatched shapes. */
  input: 3,
  /** The machine's environment: the execution provider is not available, or the Hub cannot be reached. */
  environment: 4,
} as const;

export function exitCodeFor(code: SafeLoraErrorCode): number {
  switch (code) {
    case "usage":
    case "output-exists":
      return ExitCode.usage;
    case "execution-provider-unavailable":
    case "hub-unavailable":
      return ExitCode.environment;
    default:
      return ExitCode.input;
  }
}
