import { commentJson } from "../forge/forge.js";
import { code, linkPath } from "./markdown.js";
import { variantFolderOf } from "./variant-folder.js";
import { projectsMost } from "./headline.js";
import type { SafeLoraReport } from "./schema.js";

const START = (folder: string) => `<!-- safe-lora:start ${commentJson({ folder })} -->`;
const END = "<!-- safe-lora:end -->";

function section(folder: string, report: SafeLoraReport): string {
  const path = variantFolderOf(folder);
  const which = folder === "." ? "this adapter" : `the adapter in ${code(folder)}`;
  return [
    START(folder),
    "## Safe LoRA variant",
    "",
    `A [Safe LoRA](https://arxiv.org/abs/2405.16833) variant of ${which} is in [${code(`${path}/`)}](${linkPath(path)}): ` +
      `${report.projectedCount} of ${report.moduleCount} modules projected${projectsMost(report) ? " (more than half: most of the fine-tune is removed)" : ""} towards the alignment of ${code(report.inputs.aligned.location)} ` +
      `(\`${report.selection.mode}:${report.selection.value}\`). Its [report card](${linkPath(`${path}/README.md`)}) says what changed and what it does not prove.`,
    END,
  ].join("\n");
}

/**
 * The repo's root README.md with a short section pointing to the variant (the Hub reads card metadata only
 * from the root README, so the variant's own card is not enough to be found). Replaces the section this bot
 * wrote before for the same folder; the front matter and everything else are kept.
 */
export function withReadmeSection(readme: string | null, folder: string, report: SafeLoraReport): string {
  const block = section(folder, report);
  if (!readme) return `${block}\n`;
  const start = readme.indexOf(START(folder));
  const end = start === -1 ? -1 : readme.indexOf(END, start);
  if (start !== -1 && end !== -1) return readme.slice(0, start) + block + readme.slice(end + END.length);
  return `${readme.replace(/\s*$/, "")}\n\n${block}\n`;
}
