import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import type { RepoConfig } from "../config/bot-config.js";
import { code, escapeMarkdown } from "../report/markdown.js";
import { commentCommandHelp, describeCommentCommand, parseComment, type CommentCommand } from "../commands/parse-comment.js";
import type { ForgeName, PinnedRepo } from "../forge/forge.js";
import { jobKey } from "../queue/job-key.js";
import { findAdapterFolders } from "./adapters.js";
import { commandFinetuneKey, committedFinetuneReport, type FinetunePayload } from "./finetune-job.js";
import { findFinetuneFolders } from "./finetunes.js";
import { onForge, type JobContext } from "./context.js";
import { answerComment } from "./acknowledgement.js";
import type { JobKindDefinition } from "./job-kinds.js";
import { commandPatchKey, committedReport, repatchGroup } from "./patch-job.js";
import { loadRepoConfig } from "./repo-config.js";
import { scanJobFor } from "./scan-job.js";

export const CommandPayload = z.object({
  repo: z.string(),
  discussion: z.number().int(),
  isPullRequest: z.boolean(),
  commentId: z.string(),
  content: z.string(),
});
export type CommandPayload = z.infer<typeof CommandPayload>;

/** One command job per comment, however often its webhook is delivered. */
export function commandKey(params: {
  /** The forge the repo lives on. */
  forge: ForgeName;
  repo: string;
  /** The comment that mentions the bot. */
  commentId: string;
}): string {
  return jobKey("command", params.forge, params.repo, params.commentId);
}

/**
 * A comment that mentions the bot: check who wrote it, acknowledge it with one comment, and act — queue a
 * re-patch (whose job edits the acknowledgement with the result), or answer status, help, stop, start.
 */
export async function runCommand(context: JobContext, payload: CommandPayload): Promise<unknown> {
  const { repo, discussion, commentId } = payload;
  const bot = context.forge.bot;
  const parsed = parseComment(payload.content, bot);
  if (parsed.kind === "none") return { skipped: "does not address the bot" };

  const author = await context.forge.commentAuthor({ repo, discussion, commentId });
  if (!author) return { skipped: "the comment is gone" };
  if (author === bot.name) return { skipped: "the bot's own comment" };
  // Seen, at once (a reaction, where the forge has them); a failed reaction is not worth failing the command for.
  // Only the error's code is logged: its message names the repo, which may be private.
  await context.forge.react?.({ repo, discussion, commentId }).catch((error: unknown) => context.log.warn({ code: error instanceof SafeLoraError ? error.code : "bug" }, "could not react to a command"));

  // One reply per comment, even when this job is retried after a crash.
  const answer = (text: string) => answerComment(context, { repo, discussion, commentId, text });

  // Mentioning the commenter answers them; any other outside name is shown as code.
  const who = /^[A-Za-z0-9][\w.-]*$/.test(author) ? `@${author}` : code(author);
  const head = await context.forge.head(repo);
  const files = await context.forge.open({ repo, revision: head.sha });
  try {
    const loaded = await loadRepoConfig(context.config, files, context.forge.repoConfigPath);
    const allowUsers = new Set([...context.config.allowUsers, ...(loaded.ok ? loaded.config.allowUsers : [])]);
    if (!allowUsers.has(author) && !(await context.forge.isMaintainer({ repo, username: author }))) {
      await answer(
        `Thanks for asking, ${who}. Only members of ${code(repo.split("/")[0]!)} (and people its Safe LoRA configuration allows) can ask me to act on this repo, so I will leave it as it is.`,
      );
      return { refused: author };
    }
    if (parsed.kind === "invalid") {
      await answer(`I did not understand ${code(parsed.text)}: ${escapeMarkdown(parsed.error)}.\n\n${commentCommandHelp(bot.name)}`);
      return { invalid: parsed.error };
    }
    const { command } = parsed;
    if (command.name === "help") {
      await answer(commentCommandHelp(bot.name));
      return { answered: "help" };
    }

    const folder = await resolveFolder(context, { repo, discussion, command, files, config: loaded.ok ? loaded.config : null });
    if (typeof folder !== "string") {
      await answer(folder.problem);
      return { answered: "which folder?" };
    }
    const ackId = await answer(`On it: ${code(describeCommentCommand(command))} for ${code(folder)}. I will edit this comment with the result.`);

    switch (command.name) {
      case "repatch": {
        const finetune = (await findFinetuneFolders(files, loaded.ok ? loaded.config : context.config)).find((found) => found.folder === folder);
        const common = { supersedes: repatchGroup({ forge: context.forge.name, repo, folder }), forge: context.forge.name, repo, private: head.private } as const;
        const commandRef = { discussion, commentId, ackId };
        if (!finetune) {
          await context.queue.enqueue({
            ...common,
            key: commandPatchKey({ forge: context.forge.name, repo, folder, commentId }),
            kind: "patch",
            payload: { repo, folder, sha: null, selection: command.selection, operator: command.operator ?? null, command: commandRef },
          });
          return { queued: "repatch", folder };
        }
        if (command.operator && command.operator.kind !== "paper") {
          await answer(`${code(folder)} holds a full fine-tune, which is patched with the paper's operator only: leave out \`operator=\`.`);
          return { answered: "operator not for full fine-tunes", folder };
        }
        const { maxCpuModuleElements } = context.config.fullFinetunes;
        await context.queue.enqueue({
          ...common,
          key: commandFinetuneKey({ forge: context.forge.name, repo, folder, commentId }),
          kind: "finetune",
          payload: { repo, folder, sha: null, selection: command.selection, command: commandRef } satisfies FinetunePayload,
          ...(finetune.largestModuleElements !== null && finetune.largestModuleElements > maxCpuModuleElements ? { needs: "gpu" as const } : {}),
        });
        return { queued: "repatch", folder };
      }
      case "status": {
        await answer(await statusText(context, { repo, folder }));
        return { answered: "status", folder };
      }
      case "stop": {
        await context.memory.stop({ forge: context.forge.name, repo, folder });
        for (const pr of await context.forge.pullRequests(repo)) {
          if (pr.folder === folder && (pr.status === "open" || pr.status === "draft")) {
            await context.forge.closePullRequest({ repo, num: pr.num, comment: `Closed as ${who} asked. Comment \`@${bot.name} start\` to have it covered again.` });
          }
        }
        await answer(`Stopped: I will not patch ${code(folder)} again until someone comments \`@${bot.name} start\`.`);
        return { answered: "stop", folder };
      }
      case "start": {
        await context.memory.start({ forge: context.forge.name, repo, folder });
        await context.queue.enqueue(scanJobFor({ forge: context.forge.name, repo, sha: head.sha, private: head.private, reason: "start" }));
        await answer(`Started: I cover ${code(folder)} again and am looking at the current head (\`${head.sha.slice(0, 12)}\`).`);
        return { answered: "start", folder };
      }
    }
  } finally {
    await files.close();
  }
}

/** The adapter folder a command is about: the bot pull request's own, the one named, or the only one. */
async function resolveFolder(
  context: JobContext,
  params: {
    readonly repo: string;
    /** Where the command was written. */
    readonly discussion: number;
    readonly command: Exclude<CommentCommand, { name: "help" }>;
    /** The repo at its head. */
    readonly files: PinnedRepo;
    /** The repo's configuration; null when safe-lora.yaml is invalid (the bot's defaults then). */
    readonly config: RepoConfig | null;
  },
): Promise<string | { problem: string }> {
  const { repo, discussion, command, files, config } = params;
  const pr = (await context.forge.pullRequests(repo)).find((p) => p.num === discussion);
  if (pr && pr.folder !== "*") return pr.folder;
  if (command.folder) return command.folder;
  const covered = config ?? context.config;
  const finetunes = context.config.fullFinetunes.enabled ? (await findFinetuneFolders(files, covered)).map((f) => f.folder) : [];
  const folders = [...(await findAdapterFolders(files, covered)).map((a) => a.folder), ...finetunes];
  if (folders.length === 1) return folders[0]!;
  if (folders.length === 0) return { problem: "I found no LoRA adapter or full fine-tune in this repo to act on." };
  const what = finetunes.length > 0 ? "adapters or fine-tunes" : "adapters";
  return { problem: `This repo has several ${what} (${folders.map((f) => code(f)).join(", ")}): add \`folder=<one of them>\` to the command.` };
}

/** What the open pull request for `folder` holds, read from the report at its head. */
async function statusText(context: JobContext, { repo, folder }: { readonly repo: string; readonly folder: string }): Promise<string> {
  const open = (await context.forge.pullRequests(repo)).find((pr) => (pr.folder === folder || pr.folder === "*") && (pr.status === "open" || pr.status === "draft"));
  const stopped = (await context.memory.isStopped({ forge: context.forge.name, repo, folder })) ? " I was asked to stop covering it." : "";
  if (!open) return `No open Safe LoRA pull request for ${code(folder)}.${stopped}`;
  const head = await context.forge.open({ repo, revision: context.forge.pullRequestHead(repo, open.num) });
  try {
    const r = (await committedReport(head, folder)) ?? (await committedFinetuneReport(head, folder));
    if (!r) return `Pull request #${open.num} has no readable report for ${code(folder)} yet.${stopped}`;
    return [
      // The report is read from the pull request's branch, which others can push to: its fields are outside text.
      `Pull request #${open.num} holds ${code(folder)} at \`${head.sha.slice(0, 12)}\`:`,
      `- selection ${code(`${r.selection.mode}:${r.selection.value}`)}${r.operator.kind === "subspace" && r.operator.setting ? `, operator ${code(r.operator.setting)}` : ""}, ${r.projectedCount} of ${r.moduleCount} modules projected`,
      `- aligned ${code(`${r.inputs.aligned.location}@${r.inputs.aligned.revision?.slice(0, 12) ?? "local"}`)}, base ${code(`${r.inputs.base.location}@${r.inputs.base.revision?.slice(0, 12) ?? "local"}`)}`,
      `- made by safe-lora ${code(r.tool.version)} on ${code(r.createdAt)}${stopped}`,
    ].join("\n");
  } finally {
    await head.close();
  }
}

export const commandJob: JobKindDefinition<CommandPayload> = {
  kind: "command",
  payload: CommandPayload,
  run: (context, job) => runCommand(onForge(context, job.forge), job.payload),
};
