import { DEFAULT_HUB_URL } from "../hub/hub-access.js";
import type { SafeLoraReport } from "./schema.js";

/** Quotes an argument for a POSIX shell only when it needs it, so the command stays readable. */
function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

function pinned(input: SafeLoraReport["inputs"]["base"]): string {
  return shellQuote(input.revision ? `${input.location}@${input.revision}` : input.location);
}

/**
 * The `safe-lora patch` command that makes this variant again, without the bot: every Hub input pinned to the
 * commit that was read, the Hub named when it is not the default one, the selection as asked. It calls the
 * installed `safe-lora`, never `npx safe-lora`: the name is not published on npm, and a copy-pasted `npx`
 * would run whatever someone publishes under it later.
 */
export function reproduceCommand(report: SafeLoraReport, subfolder: string, options: { readonly hubUrl?: string } = {}): string {
  const readsHub = [report.inputs.adapter, report.inputs.base, report.inputs.aligned].some((input) => input.revision !== null);
  const hubUrl = options.hubUrl?.replace(/\/+$/, "");
  return [
    "safe-lora patch",
    ...(readsHub && hubUrl && hubUrl !== DEFAULT_HUB_URL ? [`--hub-url ${shellQuote(hubUrl)}`] : []),
    `--adapter ${pinned(report.inputs.adapter)}`,
    ...(subfolder && subfolder !== "." ? [`--subfolder ${shellQuote(subfolder)}`] : []),
    `--base ${pinned(report.inputs.base)}`,
    `--aligned ${pinned(report.inputs.aligned)}`,
    `--select ${report.selection.mode}:${report.selection.value}`,
  ].join(" ");
}
