import { commentJson } from "../forge/forge.js";
import { code, codeBlock, plainLine } from "../report/markdown.js";
import type { ConfigProblem, RepoConfig } from "../config/bot-config.js";
import type { SafeLoraError } from "../errors.js";
import type { BotContext, JobContext } from "./context.js";
import { repoAdvice } from "./fix-advice.js";
import { describeProblem, REPO_CONFIG_FILE } from "./repo-config.js";

/** What a notice is about: a folder's failure, or the repo's config file (`folder` null). */
interface NoticeMarker {
  readonly key: string;
  readonly folder: string | null;
}

const noticeMarker = (marker: NoticeMarker) => `<!-- safe-lora-bot:notice ${commentJson(marker)} -->`;

function readNoticeMarker(text: string): NoticeMarker | null {
  const match = /<!-- safe-lora-bot:notice (\{.*?\}) -->/.exec(text);
  if (!match) return null;
  try {
    const { key, folder } = JSON.parse(match[1]!) as { key?: unknown; folder?: unknown };
    return typeof key === "string" ? { key, folder: typeof folder === "string" ? folder : null } : null;
  } catch {
    return null;
  }
}

/**
 * Posts a message once per `key`: on the bot's open pull request for `folder` (or any open one of the repo),
 * else in a new discussion. Retries and later jobs with the same key post nothing. Returns the number of the
 * discussion or pull request that holds it (null when a notice posted before that was recorded).
 */
async function postOnce(context: JobContext, repo: string, key: string, folder: string | null, title: string, body: string): Promise<number | null> {
  if (!context.state.claimNotice(key, repo)) return context.state.noticeDiscussion(key);
  try {
    const text = `${noticeMarker({ key, folder })}\n${body}`;
    const open = (await context.forge.pullRequests(repo)).filter((pr) => pr.status === "open" || pr.status === "draft");
    const target = open.find((pr) => pr.folder === folder || pr.folder === "*") ?? (folder === null ? open[0] : undefined);
    let num: number;
    if (target) {
      await context.forge.comment({ repo, discussion: target.num, text });
      num = target.num;
    } else num = await context.forge.openDiscussion({ repo, title, text });
    context.state.recordNoticeDiscussion(key, num);
    return num;
  } catch (error) {
    context.state.releaseNotice(key);
    throw error;
  }
}

/** An invalid safe-lora.yaml: one comment naming the key, once per version of the file. */
export async function postConfigNotice(context: JobContext, repo: string, problem: ConfigProblem, fileKey: string): Promise<number | null> {
  return postOnce(
    context,
    repo,
    `config:${repo}:${fileKey}`,
    null,
    `${REPO_CONFIG_FILE} is invalid`,
    [
      `I could not read this repo's \`${REPO_CONFIG_FILE}\`: ${describeProblem(problem)}.`,
      "",
      `Until it is fixed I will not patch adapters in this repo. The keys are listed in the bot's README ("Configuration").`,
    ].join("\n"),
  );
}

/**
 * A message as it may be published: the Hub URL the bot is configured with (possibly an internal mirror)
 * becomes "the Hub", so no host detail of the bot's own network reaches a public discussion.
 */
export function publicMessage(context: Pick<BotContext, "hub">, message: string): string {
  const hubUrl = context.hub.hubUrl.replace(/\/+$/, "");
  return hubUrl ? message.split(hubUrl).join("the Hub") : message;
}

/** A failure that is the user's to fix (bad adapter, no pair, a limit): one helpful comment, no retries. */
export async function postFailureNotice(context: JobContext, repo: string, folder: string, key: string, error: SafeLoraError, config: RepoConfig | null): Promise<number | null> {
  const where = folder === "." ? "the adapter at the root of this repo" : `the adapter in ${code(folder)}`;
  return postOnce(
    context,
    repo,
    `failure:${repo}:${folder}:${key}`,
    folder,
    folder === "." ? "Safe LoRA could not patch this adapter" : plainLine(`Safe LoRA could not patch ${folder}`),
    [`I could not make a Safe LoRA variant of ${where}:`, "", failureText(context, error, config), "", `I will try again when the adapter or \`${REPO_CONFIG_FILE}\` changes.`].join("\n"),
  );
}

/**
 * What went wrong and what the repo's owner can do about it. The message can quote tensor names and paths
 * from the repo: fenced, it cannot become Markdown. The advice speaks the repo's configuration, never flags.
 */
export function failureText(context: JobContext, error: SafeLoraError, config: RepoConfig | null): string {
  const advice = error.fix ? repoAdvice(error.fix, { operator: context.config, repo: config, botName: context.forge.bot.name }) : null;
  return [codeBlock(publicMessage(context, error.message)), ...(advice ? ["", advice] : [])].join("\n");
}

/**
 * After a success for `folder`: closes the bot's own open notices that the success answers — the folder's
 * "could not patch" discussions and the repo's "safe-lora.yaml is invalid" one (it was read, so it is valid
 * now) — with a comment saying what happened, and forgets their keys so that the same failure, should it
 * come back, is reported again. Discussions opened by anyone else are never touched (the forge lists only
 * the bot's own).
 */
export async function resolveNotices(context: JobContext, repo: string, folder: string, outcome: string): Promise<number[]> {
  const closed: number[] = [];
  for (const discussion of await context.forge.botDiscussions(repo)) {
    const marker = readNoticeMarker(discussion.text);
    if (!marker) continue;
    // Notices posted before the marker named its folder carry it only in their key.
    const forFolder = marker.folder === folder || (marker.folder === null && marker.key.startsWith(`failure:${repo}:${folder}:`));
    const answers = marker.key.startsWith("config:") || (marker.key.startsWith("failure:") && forFolder);
    if (!answers) continue;
    await context.forge.closeDiscussion({ repo, discussion: discussion.num, comment: `${outcome} Closing this discussion.` });
    context.state.releaseNotice(marker.key);
    closed.push(discussion.num);
  }
  return closed;
}
