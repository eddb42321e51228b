import type { SafeLoraReport } from "./schema.js";

/** Quotes an argument for a POSIX shell only when it needs it, so the command stays readable. */
function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

function pinned(input: SafeLoraReport["inputs"]["base"]): string {
  return shellQuote(input.revision ? `${input.location}@${input.revision}` : input.location);
}

/**
 * The `safe-lora patch` command that makes this variant again, offline of any bot: every Hub input pinned to
 * the commit that was read, the selection as asked.
 */
export function reproduceCommand(report: SafeLoraReport, subfolder: string): string {
  return [
    "npx safe-lora patch",
    `--adapter ${pinned(report.inputs.adapter)}`,
    ...(subfolder && subfolder !== "." ? [`--subfolder ${shellQuote(subfolder)}`] : []),
    `--base ${pinned(report.inputs.base)}`,
    `--aligned ${pinned(report.inputs.aligned)}`,
    `--select ${report.selection.mode}:${report.selection.value}`,
  ].join(" ");
}
