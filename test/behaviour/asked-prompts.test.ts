import { describe, expect, it } from "vitest";
import { askedPrompts, askedPromptsSha256, describeAskedPrompts } from "../../src/behaviour/asked-prompts.js";
import type { PromptSet } from "../../src/behaviour/schema.js";

const set: PromptSet = {
  name: "s",
  harmful: [
    { category: "one", prompt: "a" },
    { category: "two", prompt: "b" },
  ],
  benign: ["c"],
  refusalMarkers: ["sorry"],
};

describe("askedPromptsSha256", () => {
  it("is the sha256 of the canonical JSON", () => {
    // Python: hashlib.sha256(json.dumps({"set":"s","maxNewTokens":64,"harmful":["a","b"],"benign":["c"],
    //   "task":[{"prompt":"d","expected":"e"}]}, separators=(",",":")).encode()).hexdigest()
    expect(askedPromptsSha256(askedPrompts(set, [{ prompt: "d", expected: "e" }], 64))).toBe("0b0985d06122949bcc6bf1c224bf836a7206f724e8686922b25e9334cfe05ecf");
  });

  it("changes with anything asked, its order, the decoding setting or the set's name, not with the categories", () => {
    const hash = (changed: Partial<PromptSet>, maxNewTokens = 64) => askedPromptsSha256(askedPrompts({ ...set, ...changed }, [{ prompt: "d", expected: "e" }], maxNewTokens));
    const original = hash({});
    expect(hash({ harmful: [set.harmful[1]!, set.harmful[0]!] })).not.toBe(original);
    expect(hash({ benign: ["c "] })).not.toBe(original);
    expect(hash({ name: "t" })).not.toBe(original);
    expect(hash({}, 65)).not.toBe(original);
    expect(askedPromptsSha256(askedPrompts(set, [{ prompt: "d", expected: "f" }], 64))).not.toBe(original);
    expect(hash({ harmful: set.harmful.map((item) => ({ ...item, category: "other" })) })).toBe(original);
  });
});

describe("describeAskedPrompts", () => {
  it("gives counts, categories and the hash, not the prompts", () => {
    const asked = askedPrompts({ ...set, task: [{ prompt: "t", expected: "x" }] }, [{ prompt: "d", expected: "e" }], 64);
    const described = describeAskedPrompts(asked);
    expect(described).toEqual({ set: "s", sha256: askedPromptsSha256(asked), harmful: 2, benign: 1, task: 2, categories: 2, maxNewTokens: 64 });
  });
});
