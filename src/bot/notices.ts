import { code, codeBlock, commentJson, plainLine } from "../report/markdown.js";
import type { ConfigProblem } from "../config/bot-config.js";
import type { BotContext } from "./context.js";
import { describeProblem, REPO_CONFIG_FILE } from "./repo-config.js";

const noticeMarker = (key: string) => `<!-- safe-lora-bot:notice ${commentJson({ key })} -->`;

/**
 * Posts a message once per `key`: on the bot's open pull request for `folder` (or any open one of the repo),
 * else in a new discussion. Retries and later jobs with the same key post nothing.
 */
async function postOnce(context: BotContext, repo: string, key: string, folder: string | null, title: string, body: string): Promise<void> {
  if (!context.state.claimNotice(key, repo)) return;
  try {
    const text = `${noticeMarker(key)}\n${body}`;
    const open = (await context.forge.pullRequests(repo)).filter((pr) => pr.status === "open" || pr.status === "draft");
    const target = open.find((pr) => pr.folder === folder || pr.folder === "*") ?? (folder === null ? open[0] : undefined);
    if (target) await context.forge.comment(repo, target.num, text);
    else await context.forge.openDiscussion(repo, title, text);
  } catch (error) {
    context.state.releaseNotice(key);
    throw error;
  }
}

/** An invalid safe-lora.yaml: one comment naming the key, once per version of the file. */
export async function postConfigNotice(context: BotContext, repo: string, problem: ConfigProblem, fileKey: string): Promise<void> {
  await postOnce(
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
export async function postFailureNotice(context: BotContext, repo: string, folder: string, key: string, message: string): Promise<void> {
  const where = folder === "." ? "the adapter at the root of this repo" : `the adapter in ${code(folder)}`;
  await postOnce(
    context,
    repo,
    `failure:${repo}:${folder}:${key}`,
    folder,
    folder === "." ? "Safe LoRA could not patch this adapter" : plainLine(`Safe LoRA could not patch ${folder}`),
    // The message can quote tensor names and paths from the repo: fenced, it cannot become Markdown.
    [`I could not make a Safe LoRA variant of ${where}:`, "", codeBlock(publicMessage(context, message)), "", `I will try again when the adapter or \`${REPO_CONFIG_FILE}\` changes.`].join("\n"),
  );
}
