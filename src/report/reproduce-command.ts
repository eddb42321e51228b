import { REPO_ROOT, repoFolder } from "../storage/repo-files.js";
import { isFullFinetuneReport, type FullFinetuneReport } from "./full-finetune-schema.js";
import type { SafeLoraReport } from "./schema.js";

/** Quotes an argument for a POSIX shell only when it needs it, so the command stays readable. */
function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

function pinned(input: SafeLoraReport["inputs"]["base"]): string {
  return shellQuote(input.revision ? `${input.location}@${input.revision}` : input.location);
}

/**
 * The `safe-lora patch` command that makes this variant (of an adapter or a full fine-tune) again, without the bot: every Hub input pinned to the
 * commit that was read, the Hub named when it is not the default one, the selection as asked. It calls the
 * installed `safe-lora`, never `npx safe-lora`: the name is not published on npm, and a copy-pasted `npx`
 * would run whatever someone publishes under it later.
 */
export function reproduceCommand(
  report: SafeLoraReport | FullFinetuneReport,
  subfolder: string,
  options: {
    /** The Hub the inputs were read from when it is not the default one (hub-access' nonDefaultHubUrl), for --hub-url. */
    readonly hubUrl?: string | undefined;
  } = {},
): string {
  const patched = isFullFinetuneReport(report) ? { flag: "--finetune", input: report.inputs.finetuned } : { flag: "--adapter", input: report.inputs.adapter };
  const readsHub = [patched.input, report.inputs.base, report.inputs.aligned].some((input) => input.revision !== null);
  return [
    "safe-lora patch",
    ...(readsHub && options.hubUrl ? [`--hub-url ${shellQuote(options.hubUrl)}`] : []),
    `${patched.flag} ${pinned(patched.input)}`,
    ...(repoFolder(subfolder, "the subfolder") === REPO_ROOT ? [] : [`--subfolder ${shellQuote(subfolder)}`]),
    `--base ${pinned(report.inputs.base)}`,
    `--aligned ${pinned(report.inputs.aligned)}`,
    `--select ${report.selection.mode}:${report.selection.value}`,
    // The paper's operator is the default: commands of paper variants stay as they were.
    ...(report.operator.kind === "subspace" && report.operator.setting ? [`--operator ${shellQuote(report.operator.setting)}`] : []),
  ].join(" ");
}
