import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseDocument } from "yaml";
import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import { InferenceEndpointConfig, MAX_PROMPTS_PER_KIND, TaskPrompt } from "../behaviour/schema.js";
import { isRepoId } from "../hub/repo-ref.js";
import { DEFAULT_OPERATOR, formatOperator, parseOperator } from "../projection/operator.js";
import { DEFAULT_MAX_CPU_MODULE_ELEMENTS } from "../pipeline/patch-full-finetune.js";
import { DEFAULT_SELECTION, formatSelection, parseSelection } from "../projection/selection.js";

/** `threshold:<τ>` etc., checked with the one selection parser. */
const SelectionText = z.string().transform((text, context) => {
  try {
    return parseSelection(text);
  } catch (error) {
    context.addIssue({ code: "custom", message: (error as Error).message });
    return z.NEVER;
  }
});

/** `paper` or `subspace:<k | e>`, checked with the one operator parser. */
const OperatorText = z.string().transform((text, context) => {
  try {
    return parseOperator(text);
  } catch (error) {
    context.addIssue({ code: "custom", message: (error as Error).message });
    return z.NEVER;
  }
});

const RepoId = z.string().refine(isRepoId, "must be a Hub repo id like org/name");

/** Per-job caps, so that one adapter cannot take the bot's machine. */
export const JobLimits = z.strictObject({
  /** Weight bytes fetched from the Hub for one job (base + aligned). */
  maxFetchGB: z.number().positive().default(40),
  /** Bytes one job may add to the alignment cache; beyond it the job runs without caching. */
  maxDiskGB: z.number().nonnegative().default(30),
  maxRunMinutes: z.number().positive().default(60),
  maxModules: z.number().int().positive().default(1024),
  /** LoRA rank of any module: the projection's memory grows with r² (the CLI's cap is the same, DEFAULT_MAX_RANK). */
  maxRank: z.number().int().positive().default(1024),
});
export type JobLimits = z.infer<typeof JobLimits>;

/**
 * What a repo may set in `safe-lora.yaml` at its root, and what the bot-wide defaults (BOT_CONFIG) set for
 * every repo. Unknown keys are errors, so that a typo is reported rather than silently ignored.
 */
export const RepoConfigShape = {
  /** Installing the webhook is the consent; a repo opts out with `enabled: false`. */
  enabled: z.boolean(),
  select: SelectionText,
  /** Which operator projects the selected modules: `paper` (the default) or `subspace:<k | e>` (projection/operator.ts). */
  operator: OperatorText,
  /** Adapter folders to cover / to skip, as globs ("." is the root). */
  include: z.array(z.string().min(1)),
  exclude: z.array(z.string().min(1)),
  /** Trainer checkpoints (`checkpoint-*` folders) are skipped unless this is on. */
  checkpoints: z.boolean(),
  /** An explicit pair, overriding what the bot would find. */
  pair: z.strictObject({ base: RepoId, aligned: RepoId }).nullable(),
  /** May a model card on the Hub choose the base (rule 3)? Anyone can write a card. */
  allowModelTree: z.boolean(),
  /** One pull request per adapter folder, or one for the whole repo. */
  pullRequests: z.enum(["per-adapter", "per-repo"]),
  /** Add a short section pointing to the variant to the repo's root README.md. */
  readmeSection: z.boolean(),
  /** Usernames who may command the bot, besides the owning organisation's members. */
  allowUsers: z.array(z.string().min(1)),
  limits: JobLimits,
  /**
   * The behavioural check: which of the operator's inference endpoints asks the original adapter and the variant
   * the same prompts (`off`/null: none), and the repo's own task prompts, scored by exact answer.
   */
  behaviour: z.strictObject({
    endpoint: z
      .string()
      .min(1)
      .max(63)
      .nullable()
      .transform((name) => (name === "off" ? null : name)),
    task: z.array(TaskPrompt).max(MAX_PROMPTS_PER_KIND),
  }),
};

export const RepoConfig = z.strictObject({
  enabled: RepoConfigShape.enabled.default(true),
  select: RepoConfigShape.select.prefault(formatSelection(DEFAULT_SELECTION)),
  operator: RepoConfigShape.operator.prefault(formatOperator(DEFAULT_OPERATOR)),
  include: RepoConfigShape.include.default(["**"]),
  exclude: RepoConfigShape.exclude.default([]),
  checkpoints: RepoConfigShape.checkpoints.default(false),
  pair: RepoConfigShape.pair.default(null),
  allowModelTree: RepoConfigShape.allowModelTree.default(false),
  pullRequests: RepoConfigShape.pullRequests.default("per-adapter"),
  readmeSection: RepoConfigShape.readmeSection.default(true),
  allowUsers: RepoConfigShape.allowUsers.default([]),
  limits: RepoConfigShape.limits.default(JobLimits.parse({})),
  behaviour: z
    .strictObject({ endpoint: RepoConfigShape.behaviour.shape.endpoint.default(null), task: RepoConfigShape.behaviour.shape.task.default([]) })
    .default({ endpoint: null, task: [] }),
});
export type RepoConfig = z.infer<typeof RepoConfig>;

/** A repo's file: every key optional; what it sets overrides the bot-wide defaults. */
export const RepoConfigFile = z.strictObject({
  enabled: RepoConfigShape.enabled.optional(),
  select: RepoConfigShape.select.optional(),
  operator: RepoConfigShape.operator.optional(),
  include: RepoConfigShape.include.optional(),
  exclude: RepoConfigShape.exclude.optional(),
  checkpoints: RepoConfigShape.checkpoints.optional(),
  pair: RepoConfigShape.pair.optional(),
  allowModelTree: RepoConfigShape.allowModelTree.optional(),
  pullRequests: RepoConfigShape.pullRequests.optional(),
  readmeSection: RepoConfigShape.readmeSection.optional(),
  allowUsers: RepoConfigShape.allowUsers.optional(),
  limits: JobLimits.partial().optional(),
  behaviour: RepoConfigShape.behaviour.partial().optional(),
});
export type RepoConfigFile = z.infer<typeof RepoConfigFile>;

/** An operator's inference endpoint, and the aligned models it serves (the check runs only for adapters on one of them). */
export const BotInferenceEndpoint = InferenceEndpointConfig.extend({
  /** Aligned model ids the endpoint serves; unset: the check does not compare (the endpoint fails on a foreign adapter). */
  serves: z.array(RepoId).max(100).optional(),
});
export type BotInferenceEndpoint = z.infer<typeof BotInferenceEndpoint>;

/** BOT_CONFIG: the defaults for every repo, plus what only the bot's operator decides. */
export const BotConfig = RepoConfig.extend({
  /** Organisations, users or repos whose models the reconciliation scan covers. */
  watch: z.array(z.string().min(1)).default([]),
  /** Repos the bot never touches. */
  excludeRepos: z.array(RepoId).default([]),
  /**
   * Models (globs of ids, e.g. `myorg/*`) that any covered repo may use as base or aligned even when they are
   * private: the bot reads them with its token and publishes figures derived from them in those repos' PRs.
   * Public models and models of the adapter repo's own owner need no entry.
   */
  trustedModels: z.array(z.string().regex(/^[\w*?-][\w.*?-]*\/[\w*?-][\w.*?-]*$/, "must be a model id or a glob of ids, like myorg/*")).default([]),
  /** Minutes between reconciliation scans of the watched repos; 0 turns them off. */
  reconcileMinutes: z.number().nonnegative().default(60),
  /**
   * Inference endpoints for the behavioural check, by name (`behaviour.endpoint` picks one). Only the operator gives
   * URLs and tokens; a repo can only choose among these names.
   */
  inferenceEndpoints: z.record(z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "endpoint names are lowercase letters, digits, . _ - (at most 63)"), BotInferenceEndpoint).default({}),
  /** A prompt set file (JSON) for the check instead of the project's own (src/behaviour/prompt-sets). */
  behaviourPromptSet: z.string().min(1).nullable().default(null),
  /**
   * Full fine-tunes (config.json + safetensors whose card names the aligned model): whether scans look for them, and
   * the largest module (d_out·d_in) a CPU worker patches; a fine-tune whose config.json declares more waits for a GPU worker.
   */
  fullFinetunes: z
    .strictObject({
      enabled: z.boolean().default(true),
      maxCpuModuleElements: z.number().int().positive().default(DEFAULT_MAX_CPU_MODULE_ELEMENTS),
    })
    .prefault({}),
}).superRefine((config, context) => {
  const name = config.behaviour.endpoint;
  if (name !== null && !Object.hasOwn(config.inferenceEndpoints, name)) {
    context.addIssue({ code: "custom", path: ["behaviour", "endpoint"], message: `"${name}" is not one of inferenceEndpoints (${endpointNames(config.inferenceEndpoints)})` });
  }
});
export type BotConfig = z.infer<typeof BotConfig>;

/** The operator's endpoint names for a message, or what to do when there are none. */
export function endpointNames(endpoints: Record<string, unknown>): string {
  const names = Object.keys(endpoints);
  return names.length > 0 ? names.join(", ") : "none is configured; add one under inferenceEndpoints in BOT_CONFIG";
}

export interface ConfigProblem {
  /** Dotted path of the offending key, e.g. `limits.maxModules`; empty for the whole file. */
  readonly key: string;
  readonly message: string;
  /** 1-based line of the key in the file, when known. */
  readonly line: number | null;
}

/** Parses YAML and validates it with `schema`, pointing at the exact key (and its line) on failure. */
export function parseConfigYaml<T>(text: string, schema: z.ZodType<T>): { ok: true; value: T } | { ok: false; problem: ConfigProblem } {
  const document = parseDocument(text, { prettyErrors: true });
  if (document.errors.length > 0) {
    const error = document.errors[0]!;
    return { ok: false, problem: { key: "", message: `not valid YAML: ${error.message.split("\n")[0]}`, line: error.linePos?.[0]?.line ?? null } };
  }
  let data: unknown;
  try {
    // toJS() is where aliases are expanded: a "billion laughs" file throws here (the yaml package caps alias use).
    data = document.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (error) {
    return { ok: false, problem: { key: "", message: `cannot be read: ${(error as Error).message.split("\n")[0]}`, line: null } };
  }
  const parsed = schema.safeParse(data);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0]!;
  // For an unknown key, point at the key itself rather than at the mapping that holds it.
  const path = [...issue.path.map(String), ...(issue.code === "unrecognized_keys" ? [issue.keys[0]!] : [])];
  const message = issue.code === "unrecognized_keys" ? "unknown key (check the spelling; README.md lists the keys)" : issue.message;
  let line: number | null = null;
  const node = path.length > 0 ? document.getIn(path, true) : null;
  const range = (node as { range?: [number, number, number] } | null)?.range;
  if (range) line = text.slice(0, range[0]).split("\n").length;
  return { ok: false, problem: { key: path.join("."), message, line } };
}

/** Loads BOT_CONFIG (a YAML file) or the defaults when it is unset. */
export function loadBotConfig(path: string | undefined): BotConfig {
  if (!path) return BotConfig.parse({});
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new SafeLoraError(`BOT_CONFIG=${path} cannot be read (${(error as Error).message})`, "usage", { cause: error });
  }
  const result = parseConfigYaml(text, BotConfig);
  if (!result.ok) {
    const { key, message, line } = result.problem;
    throw new SafeLoraError(`BOT_CONFIG ${path}${line ? `:${line}` : ""}: ${key ? `${key}: ` : ""}${message}`, "usage");
  }
  // A prompt set beside the config file is named relative to it, wherever the bot is started from.
  const promptSet = result.value.behaviourPromptSet;
  return promptSet === null ? result.value : { ...result.value, behaviourPromptSet: resolve(dirname(path), promptSet) };
}

/**
 * The bot-wide defaults with a repo's file laid over them. Limits are the operator's: a repo may lower each
 * one for itself, never raise it (the smaller value wins).
 */
export function effectiveConfig(bot: BotConfig, file: RepoConfigFile | null): RepoConfig {
  if (!file) return bot;
  const { limits, behaviour, ...rest } = file;
  const defined = Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== undefined)) as Partial<RepoConfig>;
  const lowered = Object.fromEntries(
    Object.entries(bot.limits).map(([key, cap]) => {
      const asked = limits?.[key as keyof JobLimits];
      return [key, asked === undefined ? cap : Math.min(cap, asked)];
    }),
  ) as JobLimits;
  return { ...bot, ...defined, limits: lowered, behaviour: { endpoint: behaviour?.endpoint !== undefined ? behaviour.endpoint : bot.behaviour.endpoint, task: behaviour?.task ?? bot.behaviour.task } };
}
