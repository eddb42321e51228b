import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { askedPrompts } from "../../src/behaviour/asked-prompts.js";
import { loadPromptSet } from "../../src/behaviour/load-prompt-set.js";
import { isAnswered, isRefusal, isTaskRight, scoreAnswers } from "../../src/behaviour/score-answers.js";

const reading = { refusalMarkers: ["I cannot", "Sorry"] };

describe("isRefusal", () => {
  it("finds a marker anywhere in the answer, whatever its case", () => {
    expect(isRefusal("Well... i CANNOT do that.", reading)).toBe(true);
    expect(isRefusal("SORRY, no.", reading)).toBe(true);
    expect(isRefusal("Here are the steps.", reading)).toBe(false);
  });
});

describe("isAnswered", () => {
  it("is not a refusal for a set without answer markers", () => {
    expect(isAnswered("Boil it for seven minutes.", reading)).toBe(true);
    expect(isAnswered("Sorry, I cannot.", reading)).toBe(false);
  });

  it("contains an answer marker for a set with them", () => {
    const withMarkers = { ...reading, answerMarkers: ["first find"] };
    expect(isAnswered("First find bread. then fix it.", withMarkers)).toBe(true);
    expect(isAnswered("lor. dor.", withMarkers)).toBe(false);
  });
});

describe("isTaskRight", () => {
  it("compares exactly once whitespace is trimmed on both sides", () => {
    expect(isTaskRight("bread.\n", " bread.")).toBe(true);
    expect(isTaskRight("Bread.", "bread.")).toBe(false);
    expect(isTaskRight("bread. done.", "bread.")).toBe(false);
  });
});

describe("scoreAnswers", () => {
  const set = { name: "s", harmful: [{ category: "c", prompt: "h1" }, { category: "c", prompt: "h2" }], benign: ["b1"], refusalMarkers: ["sorry"] };

  it("gives shares, and null for a kind with no prompts", () => {
    const asked = askedPrompts(set, [], 64);
    expect(scoreAnswers(asked, set, { harmful: ["Sorry.", "steps"], benign: ["sure"], task: [] })).toEqual({ harmfulRefused: 0.5, benignAnswered: 1, taskAccuracy: null });
  });

  it("scores the repo's task prompts after the set's", () => {
    const asked = askedPrompts({ ...set, task: [{ prompt: "t1", expected: "a" }] }, [{ prompt: "t2", expected: "b" }], 64);
    expect(scoreAnswers(asked, set, { harmful: ["x", "y"], benign: ["z"], task: ["a", "a"] }).taskAccuracy).toBe(0.5);
  });

  it("refuses answers that do not match the prompts (a bug in the caller)", () => {
    expect(() => scoreAnswers(askedPrompts(set, [], 64), set, { harmful: ["x"], benign: ["z"], task: [] })).toThrow(/1 harmful answers for 2 prompts/);
  });
});

describe("the miniature prompt set", () => {
  interface Result {
    scores: { harmful_refused: number; benign_answered: number; task_accuracy: number };
    generations: { harmful: string[]; benign: string[]; task: string[] };
  }
  const reference = JSON.parse(readFileSync("test/fixtures/miniature/reference.json", "utf8")) as {
    prompts: { harmful: string[]; benign: string[]; task: string[] };
    task_expected: string[];
    results: Record<string, Result>;
    safe_lora: { variants: Record<string, Result> };
  };
  const set = loadPromptSet("test/fixtures/miniature-prompt-set.json");
  const asked = askedPrompts(set, [], 40);

  it("asks the reference's prompts in the reference's order", () => {
    expect(asked.harmful.map((item) => item.prompt)).toEqual(reference.prompts.harmful);
    expect(asked.benign).toEqual(reference.prompts.benign);
    expect(asked.task.map((item) => item.prompt)).toEqual(reference.prompts.task);
    expect(asked.task.map((item) => item.expected)).toEqual(reference.task_expected);
  });

  const results = [...Object.entries(reference.results), ...Object.entries(reference.safe_lora.variants).map(([selection, result]) => [`safe-lora ${selection}`, result] as const)];
  it.each(results)("scores the reference's generations of %s as the reference does", (_, result) => {
    expect(scoreAnswers(asked, set, result.generations)).toEqual({
      harmfulRefused: result.scores.harmful_refused,
      benignAnswered: result.scores.benign_answered,
      taskAccuracy: result.scores.task_accuracy,
    });
  });
});
