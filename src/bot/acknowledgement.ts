import { botMarker, readBotMarker } from "../forge/forge.js";
import type { JobContext } from "./context.js";

const ackMarker = (commentId: string) => botMarker("ack", { comment: commentId });

/** The comment id an acknowledgement's marker names, or null for any other text. */
function ackedComment(text: string): string | null {
  const comment = readBotMarker(text, "ack")?.comment;
  return typeof comment === "string" ? comment : null;
}

/**
 * The bot's one answer to a comment that commands it: the first call posts it, with a hidden marker naming the
 * comment; every later call (the same job retried after a crash, or a later step of it) finds that answer on
 * the forge by its marker and edits it. Returns the answer's comment id.
 */
export async function answerComment(
  context: JobContext,
  params: {
    readonly repo: string;
    /** Where the command was written. */
    readonly discussion: number;
    /** The command's comment. */
    readonly commentId: string;
    readonly text: string;
  },
): Promise<string> {
  const { repo, discussion, commentId } = params;
  const text = `${params.text}\n\n${ackMarker(commentId)}`;
  const mine = (await context.forge.listBotComments({ repo, discussion })).find((comment) => ackedComment(comment.text) === commentId);
  // Acknowledgements of the first release carried no marker: it remembered them instead.
  const existing = mine?.id ?? (await context.memory.legacyAck({ forge: context.forge.name, repo, commentId }));
  if (existing) {
    await context.forge.editComment({ repo, discussion, commentId: existing, text });
    return existing;
  }
  return context.forge.comment({ repo, discussion, text });
}
