/**
 * Errors the user can act on: bad input, a missing file, an adapter we cannot patch faithfully.
 * The message says what is wrong and what to do; the CLI prints it as one line and exits with `exitCode`.
 * When what to do depends on who reads it — a CLI user passes flags, a repo owner edits `safe-lora.yaml` —
 * the message says only what is wrong and `fix` says what kind of fix it takes: the CLI (src/cli/fix-advice.ts)
 * and the bot (src/bot/fix-advice.ts) each word it for their reader.
 * Anything that is not a SafeLoraError is a bug and is reported with its stack.
 */
export class SafeLoraError extends Error {
  override readonly name = "SafeLoraError";
  readonly fix: ErrorFix | null;
  constructor(
    message: string,
    /** Machine-readable reason, stable across versions (report JSON, bot comments, tests). */
    readonly code: SafeLoraErrorCode,
    options?: { cause?: unknown; fix?: ErrorFix },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.fix = options?.fix ?? null;
  }
}

/** A cap of one job (BOT_CONFIG `limits.*`; the CLI applies `maxRank` too). */
export type LimitName = "maxFetchGB" | "maxDiskGB" | "maxRunMinutes" | "maxModules" | "maxRank";

/** The kind of fix an error takes, without the words: those depend on whether a CLI user or a repo owner reads it. */
export type ErrorFix =
  /** The aligned model could not be worked out: name it (and its base). */
  | { readonly kind: "name-aligned" }
  /** The base of `aligned` could not be worked out; `modelTree` says whether the model tree was off or had none. */
  | { readonly kind: "name-base"; readonly aligned: string; readonly modelTree: "off" | "none" }
  /** The adapter was trained on the unaligned base: only an explicit pair patches it anyway. */
  | { readonly kind: "name-pair-anyway" }
  /** A quantized checkpoint was named as `role`: name the original release instead. */
  | { readonly kind: "unquantized"; readonly role: "base" | "aligned" }
  /** The pair does not fit the adapter: check it is the family the adapter was trained on. */
  | { readonly kind: "check-pair" }
  /** `model` (its page at `page`) cannot be read: gated or private for the token, the token refused, or no token. */
  | { readonly kind: "model-access"; readonly model: string; readonly page: string; readonly reason: "gated" | "token-refused" | "no-token" }
  /** A job limit was reached. */
  | { readonly kind: "raise-limit"; readonly limit: LimitName };

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
