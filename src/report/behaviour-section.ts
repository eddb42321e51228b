import type { BehaviourEvidence, BehaviourPrompts, BehaviourScores, BehaviourSubject } from "./behaviour-schema.js";
import { code, escapeMarkdown } from "./markdown.js";

type Measured = Extract<BehaviourEvidence, { status: "measured" }>;
type Metric = { readonly key: keyof BehaviourScores; readonly label: string; readonly count: (prompts: BehaviourPrompts) => number; readonly better: "higher" | "lower" };

const METRICS: readonly Metric[] = [
  { key: "harmfulRefused", label: "Harmful requests refused", count: (p) => p.harmful, better: "higher" },
  { key: "benignAnswered", label: "Benign requests answered", count: (p) => p.benign, better: "higher" },
  { key: "taskAccuracy", label: "Task prompts answered exactly", count: (p) => p.task, better: "higher" },
];

/** A share as a percentage with the count it stands for: `94.7 % (18/19)`. */
function share(value: number | null | undefined, of: number): string {
  if (value === null || value === undefined) return "—";
  return `${(value * 100).toFixed(1)} % (${Math.round(value * of)}/${of})`;
}

/** The change in percentage points, signed: `+94.7 pts`, `−100.0 pts`, `±0`. */
function change(before: number | null | undefined, after: number | null | undefined): string {
  if (before === null || before === undefined || after === null || after === undefined) return "—";
  const points = (after - before) * 100;
  if (Math.abs(points) < 0.05) return "±0";
  return `${points > 0 ? "+" : "−"}${Math.abs(points).toFixed(1)} pts`;
}

const subjectOf = (evidence: Measured, role: BehaviourSubject["role"]) => evidence.subjects.find((subject) => subject.role === role) ?? null;

/** Rows: one per metric that was asked, original beside patched beside the change. */
function scoresTable(evidence: Measured): string {
  const original = subjectOf(evidence, "original");
  const patched = subjectOf(evidence, "patched");
  const rows = METRICS.filter((metric) => metric.count(evidence.prompts) > 0).map((metric) => {
    const n = metric.count(evidence.prompts);
    const before = original?.scores[metric.key];
    const after = patched?.scores[metric.key];
    return `| ${metric.label} | ${share(before, n)} | ${share(after, n)} | ${change(before, after)} |`;
  });
  const judge = original?.scores.judgeHarmfulness ?? patched?.scores.judgeHarmfulness;
  if (judge !== undefined) {
    const fmt = (value: number | null | undefined) => (value === null || value === undefined ? "—" : value.toFixed(2));
    rows.push(`| Judge's harmfulness (1–5, lower is safer) | ${fmt(original?.scores.judgeHarmfulness)} | ${fmt(patched?.scores.judgeHarmfulness)} | — |`);
  }
  return ["| | original adapter | Safe LoRA variant | change |", "|---|---:|---:|---:|", ...rows].join("\n");
}

/** What was asked, of whom and where: enough to reproduce the figures, without the harmful prompts themselves. */
function provenance(evidence: Measured): string {
  const { prompts, endpoint } = evidence;
  const asked = evidence.subjects.map((subject) => `${subject.role} ${code(subject.adapterId)}`).join(", ");
  const categories = prompts.categories === 1 ? "1 category" : `${prompts.categories} categories`;
  return [
    `Asked through the endpoint ${code(endpoint.name)} (${endpoint.protocol === "tgi" ? "TGI" : "OpenAI-compatible"}): ${asked}.`,
    `Prompt set ${code(prompts.set)}: ${prompts.harmful} harmful (${categories}), ${prompts.benign} benign, ${prompts.task} task prompts; ` +
      `greedy, at most ${prompts.maxNewTokens} new tokens; sha256 ${code(prompts.sha256)}. Refusals are counted by keyword, as in the paper's attack-success metric.`,
  ].join(" ");
}

/** The line that says the check did not run and why; the weights-only report stands. */
export function behaviourNotMeasuredLine(evidence: Extract<BehaviourEvidence, { status: "not-measured" }>): string {
  return `**Behavioural check could not run** (endpoint ${code(evidence.endpoint.name)}): ${escapeMarkdown(evidence.reason)}. The weight-space report stands; nothing was measured.`;
}

/** The card's section: the measured table, or why there is none. Absent when no check was configured. */
export function behaviourCardSection(evidence: BehaviourEvidence | undefined): string | null {
  if (!evidence) return null;
  if (evidence.status === "not-measured") return ["## Behaviour", "", behaviourNotMeasuredLine(evidence)].join("\n");
  return [
    "## Behaviour, measured",
    "",
    "The original adapter and this variant, asked the same prompts:",
    "",
    scoresTable(evidence),
    "",
    provenance(evidence),
    "",
    "_A small keyword-scored sample, not a safety evaluation: it shows the direction of the change on these prompts._",
  ].join("\n");
}

/** The pull request's part: the same table, compact, or the line saying the check could not run. */
export function behaviourPullRequestSection(evidence: BehaviourEvidence | undefined): string | null {
  if (!evidence) return null;
  if (evidence.status === "not-measured") return behaviourNotMeasuredLine(evidence);
  return [`**Behaviour, measured** on ${code(evidence.endpoint.name)} (prompts sha256 ${code(evidence.prompts.sha256.slice(0, 12))}; details in the report card):`, "", scoresTable(evidence)].join("\n");
}

/** A one-line note while the check has yet to report, so a reviewer knows figures are coming. */
export function behaviourPendingLine(endpoint: string): string {
  return `**Behavioural check:** running on the endpoint ${code(endpoint)}; its figures will be added to this description and the report card.`;
}
