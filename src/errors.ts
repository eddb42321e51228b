/**
 * Errors the user can act on: bad input, a missing file, an adapter we cannot patch faithfully.
 * The message says what is wrong and what to do; the CLI prints it as one line and exits with `exitCode`.
 * Anything that is not a SafeLoraError is a bug and is reported with its stack.
 */
export class SafeLoraError extends Error {
  override readonly name = "SafeLoraError";
  constructor(
    message: string,
    /** Machine-readable reason, stable across versions (report JSON, bot comments, tests). */
    readonly code: SafeLoraErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type SafeLoraErrorCode =
  | "usage"
  | "malformed-safetensors"
  | "unsupported-dtype"
  | "invalid-adapter-config"
  | "invalid-model-config"
  | "unsupported-adapter"
  | "pickle-refused"
  | "missing-file"
  | "missing-tensor"
  | "shape-mismatch"
  | "non-finite"
  | "not-a-pair"
  | "no-pair"
  | "quantized-source"
  | "hub-access"
  | "model-not-allowed"
  | "hub-not-found"
  | "hub-unavailable"
  | "limit-exceeded"
  | "unsafe-path"
  | "damaged-state"
  | "execution-provider-unavailable"
  | "output-exists";
