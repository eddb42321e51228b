import { botMarker, readBotMarker } from "../forge/forge.js";
import { code, codeBlock, plainLine } from "../report/markdown.js";
import type { ConfigProblem, RepoConfig } from "../config/bot-config.js";
import type { SafeLoraError } from "../errors.js";
import type { BotContext, JobContext } from "./context.js";
import { repoAdvice } from "./fix-advice.js";
import { describeProblem } from "./repo-config.js";

/** What a notice is about: a folder's failure, or the repo's config file (`folder` null). */
interface NoticeMarker {
  readonly key: string;
  readonly folder: string | null;
}

const noticeMarker = (marker: NoticeMarker) => botMarker("notice", { ...marker });

function readNoticeMarker(text: string): NoticeMarker | null {
  const { key, folder } = readBotMarker(text, "notice") ?? {};
  return typeof key === "string" ? { key, folder: typeof folder === "string" ? folder : null } : null;
}

/**
 * Where the notice `key` already stands: the bot's discussion or pull request holding a message with its
 * marker, read back from the forge (so a notice is posted once even when the bot died right before or
 * after posting it, or lost its memory). A discussion the bot closed itself does not count: closing is how
 * it resolves a notice, after which the same failure is reported again. Null: not posted.
 */
async function postedNotice(context: JobContext, repo: string, key: string): Promise<number | null> {
  for (const thread of await context.forge.botThreads(repo)) {
    if (!thread.isPullRequest && thread.closedByBot) continue;
    if (thread.messages.some((message) => readNoticeMarker(message.text)?.key === key)) return thread.num;
  }
  return null;
}

/**
 * Posts a message once per `key`: on the bot's open pull request for `folder` (or any open one of the repo),
 * else in a new discussion. Retries and later jobs with the same key post nothing. Returns the number of the
 * discussion or pull request that holds it.
 */
async function postOnce(
  context: JobContext,
  notice: {
    readonly repo: string;
    /** What the notice is about, once: the same key is never posted twice while its notice stands. */
    readonly key: string;
    /** The adapter folder it is about; null: the whole repo (its config file). */
    readonly folder: string | null;
    /** The title of the discussion, when one is opened for it. */
    readonly title: string;
    readonly body: string;
  },
): Promise<number> {
  const { repo, key, folder } = notice;
  const posted = await postedNotice(context, repo, key);
  if (posted !== null) return posted;
  const text = `${noticeMarker({ key, folder })}\n${notice.body}`;
  const open = (await context.forge.pullRequests(repo)).filter((pr) => pr.status === "open" || pr.status === "draft");
  const target = open.find((pr) => pr.folder === folder || pr.folder === "*") ?? (folder === null ? open[0] : undefined);
  if (!target) return context.forge.openDiscussion({ repo, title: notice.title, text });
  await context.forge.comment({ repo, discussion: target.num, text });
  return target.num;
}

/** An invalid safe-lora.yaml: one comment naming the key, once per version of the file. */
export async function postConfigNotice(
  context: JobContext,
  params: {
    readonly repo: string;
    readonly problem: ConfigProblem;
    /** The content key of the file as read: a new version of it that is invalid too is noticed again. */
    readonly fileKey: string;
  },
): Promise<number> {
  const { repo, problem, fileKey } = params;
  return postOnce(context, {
    repo,
    key: `config:${repo}:${fileKey}`,
    folder: null,
    title: `${context.forge.repoConfigPath} is invalid`,
    body: [
      `I could not read this repo's \`${context.forge.repoConfigPath}\`: ${describeProblem(problem, context.forge.repoConfigPath)}.`,
      "",
      `Until it is fixed I will not patch adapters in this repo. The keys are listed in the bot's README ("Configuration").`,
    ].join("\n"),
  });
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
export async function postFailureNotice(
  context: JobContext,
  params: {
    readonly repo: string;
    /** The adapter folder, "." for the root. */
    readonly folder: string;
    /** What makes this failure this one: the adapter's files key and the error's code. */
    readonly key: string;
    readonly error: SafeLoraError;
    /** The repo's configuration, once read: the advice depends on it. */
    readonly config: RepoConfig | null;
    /** What the folder holds (default: an adapter). */
    readonly subject?: "adapter" | "fine-tune";
  },
): Promise<number> {
  const { repo, folder, error, config } = params;
  const subject = params.subject ?? "adapter";
  const where = folder === "." ? `the ${subject} at the root of this repo` : `the ${subject} in ${code(folder)}`;
  return postOnce(context, {
    repo,
    key: `failure:${repo}:${folder}:${params.key}`,
    folder,
    title: folder === "." ? `Safe LoRA could not patch this ${subject}` : plainLine(`Safe LoRA could not patch ${folder}`),
    body: [`I could not make a Safe LoRA variant of ${where}:`, "", failureText(context, error, config), "", `I will try again when the ${subject} or \`${context.forge.repoConfigPath}\` changes.`].join("\n"),
  });
}

/**
 * What went wrong and what the repo's owner can do about it. The message can quote tensor names and paths
 * from the repo: fenced, it cannot become Markdown. The advice speaks the repo's configuration, never flags.
 */
export function failureText(context: JobContext, error: SafeLoraError, config: RepoConfig | null): string {
  const advice = error.fix ? repoAdvice(error.fix, { operator: context.config, repo: config, botName: context.forge.bot.name, configPath: context.forge.repoConfigPath }) : null;
  return [codeBlock(publicMessage(context, error.message)), ...(advice ? ["", advice] : [])].join("\n");
}

/**
 * After a success for `folder`: closes the bot's own open notices that the success answers — the folder's
 * "could not patch" discussions and the repo's "safe-lora.yaml is invalid" one (it was read, so it is valid
 * now) — with a comment saying what happened. Closed by the bot, they no longer count as posted, so that the
 * same failure, should it come back, is reported again. Discussions opened by anyone else are never touched
 * (the forge lists only the bot's own).
 */
export async function resolveNotices(
  context: JobContext,
  params: {
    readonly repo: string;
    /** The adapter folder that succeeded, "." for the root. */
    readonly folder: string;
    /** What happened, in a sentence: the closing comment starts with it. */
    readonly outcome: string;
  },
): Promise<number[]> {
  const { repo, folder, outcome } = params;
  const closed: number[] = [];
  for (const discussion of await context.forge.botDiscussions(repo)) {
    const marker = readNoticeMarker(discussion.text);
    if (!marker) continue;
    // Notices posted before the marker named its folder carry it only in their key.
    const forFolder = marker.folder === folder || (marker.folder === null && marker.key.startsWith(`failure:${repo}:${folder}:`));
    const answers = marker.key.startsWith("config:") || (marker.key.startsWith("failure:") && forFolder);
    if (!answers) continue;
    await context.forge.closeDiscussion({ repo, discussion: discussion.num, comment: `${outcome} Closing this discussion.` });
    closed.push(discussion.num);
  }
  return closed;
}
