import { code, escapeMarkdown } from "../report/markdown.js";
import { effectiveConfig, parseConfigYaml, RepoConfigFile, type BotConfig, type ConfigProblem, type RepoConfig } from "../config/bot-config.js";
import type { PinnedRepo } from "../forge/forge.js";

export const REPO_CONFIG_FILE = "safe-lora.yaml";

export type RepoConfigResult =
  | { ok: true; config: RepoConfig }
  /** `fileKey` identifies this version of the file, so its problem is reported once. */
  | { ok: false; problem: ConfigProblem; fileKey: string };

/** The repo's `safe-lora.yaml` at this revision laid over the bot-wide defaults. */
export async function loadRepoConfig(bot: BotConfig, files: PinnedRepo): Promise<RepoConfigResult> {
  if (!(await files.exists(REPO_CONFIG_FILE))) return { ok: true, config: effectiveConfig(bot, null) };
  const parsed = parseConfigYaml(await files.readText(REPO_CONFIG_FILE), RepoConfigFile);
  if (!parsed.ok) return { ok: false, problem: parsed.problem, fileKey: (await files.contentKey(REPO_CONFIG_FILE)) ?? files.sha };
  return { ok: true, config: effectiveConfig(bot, parsed.value) };
}

export function describeProblem(problem: ConfigProblem): string {
  const where = `${REPO_CONFIG_FILE}${problem.line ? `, line ${problem.line}` : ""}`;
  // The key and the message can quote the file's own text.
  return problem.key ? `${code(problem.key)} (${where}): ${escapeMarkdown(problem.message)}` : `${where}: ${escapeMarkdown(problem.message)}`;
}
