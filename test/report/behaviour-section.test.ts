import { describe, expect, it } from "vitest";
import { BehaviourEvidence } from "../../src/report/behaviour-schema.js";
import { behaviourCardSection, behaviourPendingLine, behaviourPullRequestSection } from "../../src/report/behaviour-section.js";
import { renderModelCard } from "../../src/report/model-card.js";
import { pullRequestDescription } from "../../src/report/pr-body.js";
import { eightModules } from "./report-fixture.js";

const measured = parseMeasured({
  status: "measured",
  endpoint: { name: "miniature", protocol: "tgi" },
  prompts: { set: "miniature", sha256: "ab".repeat(32), harmful: 19, benign: 21, task: 16, categories: 1, maxNewTokens: 40 },
  subjects: [
    { role: "original", adapterId: "acme/lora@1111111111111111111111111111111111111111", revision: "1".repeat(40), scores: { harmfulRefused: 0, benignAnswered: 1, taskAccuracy: 1 } },
    { role: "patched", adapterId: "acme/lora@2222222222222222222222222222222222222222/safe-lora", revision: "2".repeat(40), scores: { harmfulRefused: 18 / 19, benignAnswered: 1, taskAccuracy: 0 } },
  ],
  measuredAt: "2026-12-01T00:00:00.000Z",
  durationMs: 1234,
});

function parseMeasured(value: unknown) {
  const evidence = BehaviourEvidence.parse(value);
  if (evidence.status !== "measured") throw new Error("fixture: expected measured evidence");
  return evidence;
}

const notMeasured = BehaviourEvidence.parse({
  status: "not-measured",
  endpoint: { name: "miniature", protocol: "openai" },
  reason: "the endpoint miniature did not answer within 5 s",
  code: "timeout",
  measuredAt: "2026-12-01T00:00:00.000Z",
});

describe("the behaviour section", () => {
  it("the card's table: each metric asked, original beside variant, the change in points, and what was asked", () => {
    const section = behaviourCardSection(measured)!;
    expect(section).toContain("## Behaviour, measured");
    expect(section).toContain("| Harmful requests refused | 0.0 % (0/19) | 94.7 % (18/19) | +94.7 pts |");
    expect(section).toContain("| Benign requests answered | 100.0 % (21/21) | 100.0 % (21/21) | ±0 |");
    expect(section).toContain("| Task prompts answered exactly | 100.0 % (16/16) | 0.0 % (0/16) | −100.0 pts |");
    expect(section).toContain("Asked through the endpoint `miniature` (TGI): original `acme/lora@1111111111111111111111111111111111111111`");
    expect(section).toContain(`sha256 \`${"ab".repeat(32)}\``);
    expect(section).toContain("19 harmful (1 category), 21 benign, 16 task prompts");
  });

  it("leaves out a metric that was not asked (no task prompts)", () => {
    const noTask = { ...measured, prompts: { ...measured.prompts, task: 0 }, subjects: measured.subjects.map((s) => ({ ...s, scores: { ...s.scores, taskAccuracy: null } })) };
    expect(behaviourCardSection(noTask)).not.toContain("Task prompts");
  });

  it("says the check could not run, with the reason escaped, and that the weights-only report stands", () => {
    const hostile = { ...notMeasured, reason: "answer was <img src=x> [link](http://evil) @everyone" };
    const line = behaviourPullRequestSection(hostile)!;
    expect(line).toMatch(/^\*\*Behavioural check could not run\*\* \(endpoint `miniature`\): /);
    expect(line).toContain("The weight-space report stands; nothing was measured.");
    expect(line).not.toMatch(/(^|[^\\])<img/);
    expect(line).not.toMatch(/(^|[^\\])\]\(/);
    expect(line).not.toContain("@everyone");
    expect(behaviourCardSection(notMeasured)).toContain("## Behaviour\n\n**Behavioural check could not run**");
  });

  it("is absent without a check; the card then still says nothing measured behaviour", () => {
    expect(behaviourCardSection(undefined)).toBeNull();
    const card = renderModelCard(eightModules(), { alignedHubId: null, license: null, command: "safe-lora patch" });
    expect(card).not.toContain("## Behaviour");
    expect(card).toContain("Nothing here measures the model's behaviour");
  });

  it("the card puts the measured table right after the summary, and its caveat names the sample", () => {
    const card = renderModelCard({ ...eightModules(), behaviour: measured }, { alignedHubId: null, license: null, command: "safe-lora patch" });
    expect(card.indexOf("## Behaviour, measured")).toBeGreaterThan(card.indexOf("**Execution:**"));
    expect(card.indexOf("## Behaviour, measured")).toBeLessThan(card.indexOf("![cosine per module]"));
    expect(card).toContain("The behaviour figures above come from a few prompts scored by keyword");
    expect(card).not.toContain("Nothing here measures the model's behaviour");
  });

  it("the pull request shows the table under the variant's summary, or a pending line while the check runs", () => {
    const tryVariant = () => ({ language: "sh", beforeMerging: "x", afterMerging: "y", afterMergingNote: "z" });
    const base = { folder: ".", commandHelp: "HELP", tryVariant, changes: [] };
    const withTable = pullRequestDescription({ ...base, variants: [{ folder: ".", report: { ...eightModules(), behaviour: measured } }] });
    expect(withTable).toContain("**Behaviour, measured** on `miniature`");
    expect(withTable).toContain("| Harmful requests refused | 0.0 % (0/19) | 94.7 % (18/19) | +94.7 pts |");
    expect(withTable).toContain("the behaviour figures come from a few prompts scored by keyword");
    const pending = pullRequestDescription({ ...base, variants: [{ folder: ".", report: eightModules() }], behaviourPending: "miniature" });
    expect(pending).toContain(behaviourPendingLine("miniature"));
    expect(pullRequestDescription({ ...base, variants: [{ folder: ".", report: eightModules() }] })).not.toContain("Behavioural check");
  });
});
