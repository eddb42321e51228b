import { z } from "zod";
import { Selection } from "../projection/selection.js";

/** Why a scan was asked for. */
export const ScanReason = z.enum(["push", "reconcile", "backfill", "request", "start"]);

export const ScanPayload = z.object({
  repo: z.string(),
  /** The commit to scan; null: the head of main when the job runs. */
  sha: z.string().nullable(),
  reason: ScanReason,
});
export type ScanPayload = z.infer<typeof ScanPayload>;

export const PatchPayload = z.object({
  repo: z.string(),
  /** "." for the repo root. */
  folder: z.string(),
  /** The commit to read the adapter at; null: the head of main when the job runs. */
  sha: z.string().nullable(),
  /** A command's selection; null: the repo's configured one. */
  selection: Selection.nullable(),
  /** Set when a comment asked for it: the acknowledgement to edit with the result. */
  command: z.object({ discussion: z.number().int(), commentId: z.string(), ackId: z.string() }).nullable(),
});
export type PatchPayload = z.infer<typeof PatchPayload>;

export const CommandPayload = z.object({
  repo: z.string(),
  discussion: z.number().int(),
  isPullRequest: z.boolean(),
  commentId: z.string(),
  content: z.string(),
});
export type CommandPayload = z.infer<typeof CommandPayload>;

/** Idempotency keys: the same event, however often delivered, makes one job. */
export const jobKeys = {
  scan: (repo: string, sha: string, reason: string) => `scan:${repo}@${sha}${reason === "start" ? ":start" : ""}`,
  /** Per adapter version and configuration: a README-only commit makes no new patch job. */
  patch: (repo: string, folder: string, filesKey: string, configKey: string) => `patch:${repo}:${folder}:${filesKey}:${configKey}`,
  patchForCommand: (repo: string, folder: string, commentId: string) => `patch:${repo}:${folder}:comment:${commentId}`,
  command: (repo: string, commentId: string) => `command:${repo}:${commentId}`,
};
