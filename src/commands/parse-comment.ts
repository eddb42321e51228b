import { z } from "zod";
import { Operator, formatOperator, parseOperator } from "../projection/operator.js";
import { Selection, formatSelection, parseSelection } from "../projection/selection.js";
import { didYouMean } from "../did-you-mean.js";
import { repoPathProblem } from "../storage/repo-files.js";

/** What people can ask the bot in a comment: a comment command (not a CLI command, nor the job kind that runs one). */
export const CommentCommand = z.discriminatedUnion("name", [
  z.object({
    name: z.literal("repatch"),
    selection: Selection.nullable(),
    /** `operator=paper|subspace:<k | e>`; absent: the repo's configured one. */
    operator: Operator.optional(),
    folder: z.string().nullable(),
  }),
  z.object({ name: z.literal("status"), folder: z.string().nullable() }),
  z.object({ name: z.literal("stop"), folder: z.string().nullable() }),
  z.object({ name: z.literal("start"), folder: z.string().nullable() }),
  z.object({ name: z.literal("help") }),
]);
export type CommentCommand = z.infer<typeof CommentCommand>;

export type ParsedComment =
  /** The comment does not address the bot: nothing to do. */
  | { kind: "none" }
  | { kind: "command"; command: CommentCommand; text: string }
  /** Addressed to the bot but not understood: reply with `error` and the help. */
  | { kind: "invalid"; error: string; text: string };

export function commentCommandHelp(botName: string): string {
  return [
    `Commands (in a comment on the bot's pull request, or in a new discussion that mentions @${botName}):`,
    "",
    `- \`@${botName} repatch\` — patch again with the configured selection;`,
    `  \`@${botName} repatch threshold:0.4\` (or \`tau=0.4\`), \`top-k:10\` (\`top-k=10\`), \`fraction:0.1\` (\`fraction=0.1\`)`,
    `  and \`operator=subspace:8\` (project onto V's top 8 singular directions), \`operator=subspace:0.9\` (those keeping 90 % of its energy) or \`operator=paper\`, alone or with a selection`,
    `- \`@${botName} status\` — what the pull request holds and how it was made`,
    `- \`@${botName} stop\` — close the pull request and stop covering this adapter; \`@${botName} start\` undoes it`,
    `- \`@${botName} help\` — this message`,
    "",
    "In a repo with several adapters, add `folder=<path>` (e.g. `folder=adapters/summaries`) outside the adapter's own pull request.",
  ].join("\n");
}

/** Drops quoted lines and code blocks, so that quoting a command never runs it again. */
function unquoted(text: string): string {
  return text
    .replace(/```[\s\S]*?```/g, "")
    .split("\n")
    .filter((line) => !line.trimStart().startsWith(">"))
    .join("\n");
}

const COMMENT_COMMAND_NAMES = CommentCommand.options.map((option) => option.shape.name.value);

/** How a comment may address the bot: by mention (`@<name>`), or by a slash command at a line's start. */
export interface BotAddress {
  readonly name: string;
  readonly slashCommand?: string;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Finds `@<bot> <command> [args]` (or `/<slash> <command> [args]` at the start of a line, where the forge has
 * one) in a comment. Selections are read by the CLI's parser (`threshold:0.4`, or the aliases `tau=0.4`,
 * `top-k=3`, `fraction=0.1`), operators by its `--operator` parser (`operator=subspace:8`); `folder=<path>` names
 * an adapter folder.
 */
export function parseComment(text: string, bot: string | BotAddress): ParsedComment {
  const { name: botName, slashCommand } = typeof bot === "string" ? { name: bot, slashCommand: undefined } : bot;
  const body = unquoted(text);
  const mention = new RegExp(`(?:^|[^\\w@/])@${escapeRegExp(botName)}(?![\\w-])([^\\n]*)`, "i").exec(body);
  const slash = slashCommand ? new RegExp(`(?:^|\\n)[ \\t]*/${escapeRegExp(slashCommand)}(?![\\w-])([^\\n]*)`, "i").exec(body) : null;
  // The earlier of the two, when a comment has both.
  const found = mention && slash ? (mention.index <= slash.index ? { match: mention, prefix: `@${botName}` } : { match: slash, prefix: `/${slashCommand}` }) : mention ? { match: mention, prefix: `@${botName}` } : slash ? { match: slash, prefix: `/${slashCommand}` } : null;
  if (!found) return { kind: "none" };
  const mentionRest = found.match;
  const line = `${found.prefix}${mentionRest[1]}`.trim();
  const words = mentionRest[1]!.trim().split(/\s+/).filter(Boolean);
  const [name, ...args] = words;
  if (!name) return { kind: "invalid", error: "no command after the mention", text: line };
  const command = name.toLowerCase();
  // Known names first: a misspelt command with a selection must be answered as a typo, not as "takes no argument".
  if (!(COMMENT_COMMAND_NAMES as readonly string[]).includes(command)) {
    const near = didYouMean(command, COMMENT_COMMAND_NAMES);
    return { kind: "invalid", error: `unknown command \`${command}\`${near ? ` — did you mean \`${near}\`?` : ""}`, text: line };
  }
  let folder: string | null = null;
  let selection: Selection | null = null;
  let operator: Operator | null = null;
  for (const arg of args) {
    const folderMatch = /^folder=(.+)$/i.exec(arg);
    if (folderMatch) {
      folder = folderMatch[1]!.replace(/^\.?\/+|\/+$/g, "") || ".";
      // The folder becomes repo paths the bot reads and commits under, so it must stay inside the repo.
      const problem = folder === "." ? null : repoPathProblem(folder);
      if (problem) return { kind: "invalid", error: `\`folder=\` must name a folder inside the repo, like \`folder=adapters/summaries\` (${problem})`, text: line };
      continue;
    }
    if (command !== "repatch") return { kind: "invalid", error: `\`${command}\` takes no argument \`${arg}\``, text: line };
    const operatorMatch = /^operator[=:](.*)$/i.exec(arg);
    if (operatorMatch) {
      if (operator) return { kind: "invalid", error: `more than one operator (\`${arg}\`)`, text: line };
      try {
        operator = parseOperator(operatorMatch[1]!);
      } catch (error) {
        return { kind: "invalid", error: (error as Error).message, text: line };
      }
      continue;
    }
    let next: Selection;
    try {
      next = parseSelection(arg);
    } catch (error) {
      return { kind: "invalid", error: (error as Error).message, text: line };
    }
    if (selection) return { kind: "invalid", error: `more than one selection (\`${arg}\`)`, text: line };
    selection = next;
  }
  const parsed = CommentCommand.safeParse(
    command === "repatch" ? { name: command, selection, ...(operator ? { operator } : {}), folder } : command === "help" ? { name: command } : { name: command, folder },
  );
  if (!parsed.success) return { kind: "invalid", error: `unknown command \`${command}\``, text: line };
  return { kind: "command", command: parsed.data, text: line };
}

export function describeCommentCommand(command: CommentCommand): string {
  if (command.name === "repatch") {
    return `repatch${command.selection ? ` ${formatSelection(command.selection)}` : ""}${command.operator ? ` operator=${formatOperator(command.operator)}` : ""}`;
  }
  return command.name;
}
