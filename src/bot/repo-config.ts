import { code, escapeMarkdown } from "../report/markdown.js";
import { effectiveConfig, endpointNames, parseConfigYaml, RepoConfigFile, type BotConfig, type ConfigProblem, type RepoConfig } from "../config/bot-config.js";
import type { PinnedRepo } from "../forge/forge.js";

export type RepoConfigResult =
  | { ok: true; config: RepoConfig }
  /** `fileKey` identifies this version of the file, so its problem is reported once. */
  | { ok: false; problem: ConfigProblem; fileKey: string };

/** The repo's configuration file at this revision (`path`: the forge's, e.g. `safe-lora.yaml`) laid over the bot-wide defaults. */
export async function loadRepoConfig(bot: BotConfig, files: PinnedRepo, path: string): Promise<RepoConfigResult> {
  if (!(await files.exists(path))) return { ok: true, config: effectiveConfig(bot, null) };
  const parsed = parseConfigYaml(await files.readText(path), RepoConfigFile);
  const fileKey = async () => (await files.contentKey(path)) ?? files.sha;
  if (!parsed.ok) return { ok: false, problem: parsed.problem, fileKey: await fileKey() };
  // A repo chooses among the operator's endpoints by name; it can never give a URL of its own.
  const endpoint = parsed.value.behaviour?.endpoint;
  if (endpoint && !Object.hasOwn(bot.inferenceEndpoints, endpoint)) {
    return { ok: false, problem: { key: "behaviour.endpoint", message: `"${endpoint}" is not an inference endpoint of this bot (${endpointNames(bot.inferenceEndpoints)}); use one of those names, or off`, line: null }, fileKey: await fileKey() };
  }
  return { ok: true, config: effectiveConfig(bot, parsed.value) };
}

export function describeProblem(problem: ConfigProblem, path: string): string {
  const where = `${path}${problem.line ? `, line ${problem.line}` : ""}`;
  // The key and the message can quote the file's own text.
  return problem.key ? `${code(problem.key)} (${where}): ${escapeMarkdown(problem.message)}` : `${where}: ${escapeMarkdown(problem.message)}`;
}
