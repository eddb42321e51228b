import { describe, expect, it } from "vitest";
import { effectiveThreshold, fractionToCount, isSelected, parseSelection, projectsMostModules, roundCosine } from "../../src/projection/selection.js";

describe("roundCosine", () => {
  // Pairs computed with numpy 2.4 (np.round(x, 5)), which the official implementation uses.
  it.each([
    [0.123455, 0.12346],
    [2.5e-5, 2e-5],
    [4.5e-5, 4e-5],
    [0.000125, 0.00012],
    [3.5e-5, 3e-5],
    [-2.5e-5, -2e-5],
    [0.33819499, 0.33819],
    [0.5, 0.5],
  ])("rounds %d to %d as numpy.round does", (value, expected) => {
    expect(roundCosine(value)).toBe(expected);
  });
});

describe("parseSelection", () => {
  it("reads the three modes", () => {
    expect(parseSelection("threshold:0.35")).toEqual({ mode: "threshold", value: 0.35 });
    expect(parseSelection("top-k:10")).toEqual({ mode: "top-k", value: 10 });
    expect(parseSelection("fraction:0.1")).toEqual({ mode: "fraction", value: 0.1 });
  });

  it.each([
    ["tau=0.3", { mode: "threshold", value: 0.3 }],
    ["threshold=0.3", { mode: "threshold", value: 0.3 }],
    ["tau:0.3", { mode: "threshold", value: 0.3 }],
    ["TAU = 0.3", { mode: "threshold", value: 0.3 }],
    ["top-k=10", { mode: "top-k", value: 10 }],
    ["topk:4", { mode: "top-k", value: 4 }],
    ["fraction=0.1", { mode: "fraction", value: 0.1 }],
  ])("reads the comment alias %s as the one syntax does", (text, selection) => {
    expect(parseSelection(text)).toEqual(selection);
  });

  it.each([
    ["treshold:0.3", "did you mean threshold:0.3?"],
    ["thresold=0.3", "did you mean threshold:0.3?"],
    ["top-j:5", "did you mean top-k:5?"],
    ["fractoin:0.2", "did you mean fraction:0.2?"],
    ["0.3", "did you mean threshold:0.3?"],
  ])("answers the typo %s with the spelling it meant", (text, hint) => {
    expect(() => parseSelection(text)).toThrow(hint);
  });

  it("suggests nothing for a word that is no near miss", () => {
    expect(() => parseSelection("best:3")).toThrow(/^"best:3" is not a selection: write threshold:<τ>, top-k:<k> or fraction:<p>/);
  });

  it.each(["threshold", "threshold:", "threshold:abc", "threshold:1.5", "top-k:0", "top-k:2.5", "fraction:0", "fraction:1.2", "tau=2", "best:3"])(
    "refuses %s with a message that shows the syntax",
    (text) => {
      expect(() => parseSelection(text)).toThrow(/threshold|top-k|fraction/);
    },
  );
});

describe("effectiveThreshold", () => {
  const cosines = [0.3, 0.1, 0.2, 0.2, 0.5];

  it("uses τ as given for threshold", () => {
    expect(effectiveThreshold({ mode: "threshold", value: 0.25 }, cosines)).toBe(0.25);
  });

  it("takes the k-th smallest cosine for top-k, so ties add modules as in the reference", () => {
    const tau = effectiveThreshold({ mode: "top-k", value: 2 }, cosines)!;
    expect(tau).toBe(0.2);
    expect(cosines.filter((c) => isSelected(c, tau))).toHaveLength(3);
  });

  it("selects everything when k exceeds the module count", () => {
    expect(effectiveThreshold({ mode: "top-k", value: 99 }, cosines)).toBe(0.5);
  });

  it("derives k = ⌈p·M⌉ for fraction without binary-fraction overshoot", () => {
    expect(fractionToCount(0.1, 30)).toBe(3);
    expect(fractionToCount(0.1, 31)).toBe(4);
    expect(fractionToCount(0.01, 5)).toBe(1);
    expect(effectiveThreshold({ mode: "fraction", value: 0.4 }, cosines)).toBe(0.2);
  });

  it("has no threshold when no module has a cosine", () => {
    expect(effectiveThreshold({ mode: "top-k", value: 3 }, [])).toBeNull();
  });

  it("projects when the rounded cosine equals τ (≤, as the reference)", () => {
    expect(isSelected(0.35, 0.35)).toBe(true);
    expect(isSelected(0.35001, 0.35)).toBe(false);
  });
});

describe("projectsMostModules", () => {
  it.each([
    [5, 8, true],
    [4, 8, false],
    [1, 1, true],
    [7, 64, false],
    [33, 64, true],
    [0, 0, false],
  ])("%d of %d projected: %s", (projected, total, expected) => {
    expect(projectsMostModules(projected, total)).toBe(expected);
  });
});
