/**
 * Errors the user can act on: bad input, a missing file, an adapter we cannot patch faithfully.
 * The message says what is wrong and what to do; the CLI prints it as one line and exits with its code's
 * `exitCode`, and the bot refuses, retries or fails the job by the same rule (ERROR_RULES below).
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
  | { readonly kind: "raise-limit"; readonly limit: LimitName }
  /** A full fine-tune's module (`elements` = d_out·d_in) is above what a CPU run takes on: a job for a GPU. */
  | { readonly kind: "needs-gpu"; readonly elements: number };

/** Exit codes scripts can rely on (README.md, "Exit codes"). */
export const ExitCode = {
  ok: 0,
  /** A bug: anything that is not a SafeLoraError. Please report it. */
  internal: 1,
  /** The command line or environment is wrong: bad flag, bad value, output folder in the way. */
  usage: 2,
  /** The inputs cannot be patched: malformed or unsupported files, missing tensors, mismatched shapes; no pair. */
  input: 3,
  /** The machine's environment: the execution provider is not available, or the Hub cannot be reached. */
  environment: 4,
} as const;

/**
 * Whose move it is after an error: the user's (fix the input, the flags or the repo's config), the operator's
 * (the machine, BOT_CONFIG, DATA_DIR), the forge's (down or busy for a moment: try again), or nobody's but the
 * code's (a bug: anything that is not a SafeLoraError).
 */
export type ErrorFault = "user" | "operator" | "forge" | "bug";

export interface ErrorRule {
  /** What the CLI exits with. */
  readonly exitCode: number;
  /** Whether the bot tries the job again later: only when a later attempt may go differently. */
  readonly retry: boolean;
  readonly fault: ErrorFault;
}

const user = (exitCode: number): ErrorRule => ({ exitCode, retry: false, fault: "user" });

/**
 * The one table of what each error means for the CLI and the bot. The bot refuses a job (once, with a notice)
 * on a user's error, tries again on a retryable one, and fails it otherwise.
 */
const ERROR_RULES = {
  usage: user(ExitCode.usage),
  "output-exists": user(ExitCode.usage),
  "malformed-safetensors": user(ExitCode.input),
  "unsupported-dtype": user(ExitCode.input),
  "invalid-adapter-config": user(ExitCode.input),
  "invalid-model-config": user(ExitCode.input),
  "unsupported-adapter": user(ExitCode.input),
  "pickle-refused": user(ExitCode.input),
  "missing-file": user(ExitCode.input),
  "missing-tensor": user(ExitCode.input),
  "shape-mismatch": user(ExitCode.input),
  "non-finite": user(ExitCode.input),
  "not-a-pair": user(ExitCode.input),
  "no-pair": user(ExitCode.input),
  "quantized-source": user(ExitCode.input),
  // A gated or private model, a wrong id: the repo can name another pair (or the operator grant access).
  "hub-access": user(ExitCode.input),
  "hub-not-found": user(ExitCode.input),
  // The pair is outside BOT_CONFIG's trust: the repo can name one inside it.
  "model-not-allowed": user(ExitCode.input),
  "limit-exceeded": user(ExitCode.input),
  "unsafe-path": user(ExitCode.input),
  // The repo's owner removed the bot (a GitHub App uninstalled): its jobs are refused until it is installed again.
  "not-installed": user(ExitCode.input),
  "hub-unavailable": { exitCode: ExitCode.environment, retry: true, fault: "forge" },
  // The machine's, not the repo's: retried, since the operator may fix it meanwhile.
  "execution-provider-unavailable": { exitCode: ExitCode.environment, retry: true, fault: "operator" },
  // The queue's Redis (QUEUE_URL) does not answer: the operator's to start; a supervisor restarts the process.
  "queue-unavailable": { exitCode: ExitCode.environment, retry: true, fault: "operator" },
  // The bot's own database: no repo owner can fix it, and a retry reads the same damage.
  "damaged-state": { exitCode: ExitCode.input, retry: false, fault: "operator" },
} as const satisfies Record<string, ErrorRule>;

/** Machine-readable reason, stable across versions (report JSON, bot comments, tests). */
export type SafeLoraErrorCode = keyof typeof ERROR_RULES;

/** Every code, for whatever must go through all of them. */
export const ERROR_CODES = Object.keys(ERROR_RULES) as SafeLoraErrorCode[];

/** What anything that is not a SafeLoraError is: a bug, reported with its stack and retried by the bot. */
const BUG: ErrorRule = { exitCode: ExitCode.internal, retry: true, fault: "bug" };

export function errorRule(code: SafeLoraErrorCode): ErrorRule {
  return ERROR_RULES[code];
}

/** The rule for any thrown value: a SafeLoraError's code's, else a bug's. */
export function ruleOf(error: unknown): ErrorRule {
  return error instanceof SafeLoraError ? errorRule(error.code) : BUG;
}

/** Whether the bot should try again later: a retryable code, or a bug (which may have been a fluke). */
export function isRetryable(error: unknown): boolean {
  return ruleOf(error).retry;
}

/** Failures the user can fix — a bad adapter, no pair, a gated model, a limit: reported once, never retried. */
export function isUsersToFix(error: unknown): error is SafeLoraError {
  return error instanceof SafeLoraError && ruleOf(error).fault === "user";
}
