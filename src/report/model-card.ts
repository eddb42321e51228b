import { behaviourCardSection } from "./behaviour-section.js";
import { code, codeBlock, tableCell } from "./markdown.js";
import { bytesReadText, givenUp, majorityWarning, modelTreeWarning, pairLines } from "./headline.js";
import type { ModuleReport, SafeLoraReport } from "./schema.js";

export interface ModelCardContext {
  /** The aligned model the adapter was trained on, when it is a Hub id (goes into `base_model`). */
  readonly alignedHubId: string | null;
  /** The adapter's licence, when its config or card names one. */
  readonly license: string | null;
  /** The `safe-lora patch` command that makes this variant again from the same pinned inputs. */
  readonly command: string;
}

const fmt = (value: number | null, digits = 5) => (value === null ? "—" : value.toFixed(digits));

/** How the variant relates to the aligned model on the Hub's model tree, with the library that loads it and its tags. */
const VARIANT_KINDS = {
  adapter: { relation: "adapter", library: "peft", tags: ["safe-lora", "lora", "peft"] },
  finetune: { relation: "finetune", library: "transformers", tags: ["safe-lora"] },
} as const;

/** The YAML the Hub reads: base model and relation, library, licence, tags. */
export function frontMatter(context: ModelCardContext, kind: keyof typeof VARIANT_KINDS = "adapter"): string {
  const { relation, library, tags } = VARIANT_KINDS[kind];
  const lines = ["---"];
  if (context.alignedHubId) lines.push(`base_model: ${context.alignedHubId}`, `base_model_relation: ${relation}`);
  lines.push(`library_name: ${library}`);
  // The licence comes from the input's card: quoted as a YAML string, it cannot add keys.
  if (context.license) lines.push(`license: ${/^[\w.+-]+$/.test(context.license) ? context.license : JSON.stringify(context.license)}`);
  lines.push("tags:", ...tags.map((tag) => `  - ${tag}`), "---");
  return lines.join("\n");
}

/** The pair the card's cosines depend on, under its heading. */
export function alignmentPairBlock(report: Parameters<typeof pairLines>[0]): string {
  return ["**Alignment pair** (V = W_aligned − W_base is taken from these two):", "", pairLines(report)].join("\n");
}

/** The selection as asked and the τ it came to. */
export function selectionLine(selection: SafeLoraReport["selection"]): string {
  const threshold = selection.threshold === null ? "none (no module has a cosine)" : `τ = ${fmt(selection.threshold)}`;
  return `- **Selection:** \`${selection.mode}:${selection.value}\` (${threshold}; a module is projected when its rounded cosine is ≤ τ)`;
}

/** The title, the warnings, what was given up, the pair, the method in a paragraph and the counts. */
export function cardSummary(report: SafeLoraReport): string {
  // The cost and the pair come first: a reviewer who reads one screen must see what was given up and on whose word.
  const warnings = [majorityWarning(report), modelTreeWarning(report)].filter((line): line is string => line !== null);
  return [
    "# Safe LoRA variant",
    "",
    ...warnings.flatMap((line) => [line, ""]),
    givenUp(report),
    "",
    alignmentPairBlock(report),
    "",
    "Safe LoRA (Hsu et al., NeurIPS 2024) compares each LoRA update with the weight difference between the aligned and the " +
      "base release of the model family, and maps the updates that point furthest away from it onto that alignment direction. " +
      "This folder holds the adapter with those modules' `lora_B` replaced; everything else is unchanged.",
    "",
    `- **Projected:** ${report.projectedCount} of ${report.moduleCount} modules`,
    selectionLine(report.selection),
    ...(isSubspace(report) ? [`- **Operator:** \`${report.operator.setting}\` — ${report.operator.formula}`] : []),
    `- **Execution:** ${report.operator.executionProvider}, ${(report.durationMs / 1000).toFixed(1)} s`,
  ].join("\n");
}

function skipNote(module: ModuleReport): string {
  if (module.skipped === "zero-update") return "unchanged: the update is zero (lora_B is all zeros)";
  if (module.skipped === "zero-alignment") return "unchanged: base and aligned weights are identical here";
  return "";
}

/** Every module: cosine, projected or not, ‖CB‖/‖B‖, and why an unchanged one is; then the tensors copied as they were. */
export function modulesSection(report: SafeLoraReport): string {
  if (isSubspace(report)) return subspaceModulesSection(report);
  const rows = report.modules.map(
    (m) =>
      `| ${m.layer ?? "—"} | ${tableCell(code(m.target))} | ${fmt(m.cosine)} | ${m.projected ? "**yes**" : "no"} | ${fmt(m.normRatio, 4)} | ${skipNote(m)} |`,
  );
  return [
    "## Modules",
    "",
    "cos = cos(CΔW, ΔW); ‖CB‖/‖B‖ shows how strongly the operator would shrink the module's `lora_B` (it is applied only where projected).",
    "",
    "| layer | module | cos | projected | ‖CB‖/‖B‖ | note |",
    "|---:|---|---:|:---:|---:|---|",
    ...rows,
  ].join("\n") + untouchedLine(report);
}

function untouchedLine(report: SafeLoraReport): string {
  return report.untouchedTensors.length > 0 ? `\n\nCopied unchanged: ${report.untouchedTensors.map(code).join(", ")}.` : "";
}

export function chartImage(): string {
  return "![cosine per module](similarity.svg)";
}

/** Each input with its pinned revision and file hashes, and the bytes read. */
export function inputsSection(report: SafeLoraReport): string {
  return inputsList([["Adapter", report.inputs.adapter], ["Base (unaligned)", report.inputs.base], ["Aligned", report.inputs.aligned]], bytesReadText(report));
}

/** The inputs section of a card: each input by role, pinned, with its files' hashes; then the bytes read. */
export function inputsList(inputs: ReadonlyArray<readonly [role: string, input: SafeLoraReport["inputs"]["adapter"]]>, bytesRead: string): string {
  const line = (role: string, input: SafeLoraReport["inputs"]["adapter"]) =>
    `- **${role}:** ${code(input.location)}${input.revision ? ` @ ${code(input.revision)}` : ""}` +
    input.files.map((file) => `\n  - ${code(file.path)} sha256 ${code(file.sha256)}`).join("");
  return ["## Inputs", "", ...inputs.map(([role, input]) => line(role, input)), "", `Bytes read: ${bytesRead}.`].join("\n");
}

/** How to make the same variant again without the bot. */
export function reproduceSection(command: string): string {
  return [
    "## Reproduce",
    "",
    // safe-lora is not published on npm: `npx safe-lora` would run whatever someone later publishes under that name.
    "With the `safe-lora` command installed from the project's source (its README, \"Getting started\"), this reads the same " +
      "pinned inputs and writes the same variant:",
    "",
    codeBlock(command, "bash"),
  ].join("\n");
}

/** What the variant is not: a full evaluation of behaviour, a true projection, a patch of every tensor. */
/** A report of the subspace operator (P = U_k U_kᵀ); older reports and paper runs are the paper's. */
function isSubspace(report: SafeLoraReport): boolean {
  return report.operator.kind === "subspace";
}

/** The modules table of a subspace run: P in place of C, and per module the k used and the energy of V it keeps. */
function subspaceModulesSection(report: SafeLoraReport): string {
  const rows = report.modules.map(
    (m) =>
      `| ${m.layer ?? "—"} | ${tableCell(code(m.target))} | ${fmt(m.cosine)} | ${m.projected ? "**yes**" : "no"} | ${fmt(m.normRatio, 4)} | ${m.subspaceRank ?? "—"}${m.subspaceCapped ? " (capped)" : ""} | ${m.capturedEnergy === undefined ? "—" : `${(100 * m.capturedEnergy).toFixed(1)} %`} | ${skipNote(m)} |`,
  );
  return [
    "## Modules",
    "",
    "cos = cos(PΔW, ΔW) with P = U_k U_kᵀ, the projector onto V's top k left singular vectors; ‖PB‖/‖B‖ is the share of `lora_B`'s norm P keeps " +
      "(applied only where projected); energy = Σ_{i≤k} σᵢ² / ‖V‖_F², the share of V that those k directions hold.",
    "",
    "| layer | module | cos | projected | ‖PB‖/‖B‖ | k | energy | note |",
    "|---:|---|---:|:---:|---:|---:|---:|---|",
    ...rows,
  ].join("\n") + untouchedLine(report);
}

export function caveatsSection(report: SafeLoraReport): string {
  const behaviour =
    report.behaviour?.status === "measured"
      ? "- The selection is a weight-space heuristic. The behaviour figures above come from a few prompts scored by keyword: evaluate the variant on your task and on your own safety prompts before you rely on it."
      : "- This is a weight-space heuristic. Nothing here measures the model's behaviour: evaluate the variant on your task and on safety prompts before you rely on it.";
  return ["## Caveats", "", behaviour, isSubspace(report) ? SUBSPACE_CAVEAT : PAPER_CAVEAT, ...OTHER_CAVEATS].join("\n");
}

const PAPER_CAVEAT =
  "- The operator C = V Vᵀ / ‖V‖_F is not a projection: it scales each component of `lora_B` along V's singular directions by σᵢ²/‖V‖_F, " +
  "and can shrink a projected module's update by orders of magnitude (see ‖CB‖/‖B‖). This follows the paper's reference implementation.";

const SUBSPACE_CAVEAT =
  "- The subspace operator P = U_k U_kᵀ is this project's extension, not the paper's: a true projection that keeps the part of `lora_B` " +
  "within V's top k singular directions unchanged and removes the rest. U_k comes from a seeded randomised SVD; k and the energy it keeps are per module above.";

const OTHER_CAVEATS = [
  "- Tensors other than LoRA factors (LoRA biases, `modules_to_save`) are copied unchanged and are not covered by Safe LoRA.",
];

/** `README.md` of the patched variant: front matter the Hub reads, then the report in words and tables, one function per section. */
export function renderModelCard(report: SafeLoraReport, context: ModelCardContext): string {
  const sections = [
    frontMatter(context),
    cardSummary(report),
    behaviourCardSection(report.behaviour),
    chartImage(),
    modulesSection(report),
    inputsSection(report),
    reproduceSection(context.command),
    caveatsSection(report),
  ].filter((section): section is string => section !== null);
  return `${sections.join("\n\n")}\n`;
}
