import { describe, expect, it } from "vitest";
import { didYouMean, editDistance } from "../../src/did-you-mean.js";
import { runCli } from "../helpers/cli.js";

describe("typos are answered with the spelling meant", () => {
  it("a misspelt command", async () => {
    const result = await runCli(["pach"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('safe-lora: unknown command "pach": did you mean "patch"? Run safe-lora --help\n');
  });

  it("a misspelt selection mode keeps the value", async () => {
    const result = await runCli(["patch", "--adapter", "./no-such-adapter", "--select", "treshold:0.3"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^safe-lora: "treshold:0\.3" is not a selection: did you mean threshold:0\.3\? Write threshold:<τ>/);
  });

  it("the comment aliases are accepted by --select (it fails later, on the missing adapter)", async () => {
    const result = await runCli(["patch", "--adapter", "/no/such/dir", "--select", "tau=0.3"]);
    expect(result.stderr).not.toMatch(/selection/);
    expect(result.stderr).toMatch(/--adapter \/no\/such\/dir/);
  });
});

describe("didYouMean", () => {
  it("counts a swapped pair of letters as one edit", () => {
    expect(editDistance("fractoin", "fraction")).toBe(1);
    expect(editDistance("repach", "repatch")).toBe(1);
    expect(editDistance("", "abc")).toBe(3);
  });

  it("suggests only near misses", () => {
    expect(didYouMean("repach", ["repatch", "status", "stop", "start", "help"])).toBe("repatch");
    expect(didYouMean("dance", ["repatch", "status", "stop", "start", "help"])).toBeNull();
    // Two letters off a two-letter word is another word, not a typo.
    expect(didYouMean("go", ["stop"])).toBeNull();
  });
});
