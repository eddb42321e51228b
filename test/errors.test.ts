import { readFileSync } from "node:fs";
import { HubApiError } from "@huggingface/hub";
import { describe, expect, it } from "vitest";
import { ERROR_CODES, errorRule, ExitCode, isRetryable, isUsersToFix, ruleOf, SafeLoraError, type ErrorRule, type SafeLoraErrorCode } from "../src/errors.js";

const user = (exitCode: number): ErrorRule => ({ exitCode, retry: false, fault: "user" });

/** Written out code by code, from README.md's "Exit codes" and the bot's behaviour (refused, retried). */
const EXPECTED: Record<SafeLoraErrorCode, ErrorRule> = {
  usage: user(2),
  "output-exists": user(2),
  "malformed-safetensors": user(3),
  "unsupported-dtype": user(3),
  "invalid-adapter-config": user(3),
  "invalid-model-config": user(3),
  "unsupported-adapter": user(3),
  "pickle-refused": user(3),
  "missing-file": user(3),
  "missing-tensor": user(3),
  "shape-mismatch": user(3),
  "non-finite": user(3),
  "not-a-pair": user(3),
  "no-pair": user(3),
  "quantized-source": user(3),
  "hub-access": user(3),
  "hub-not-found": user(3),
  "model-not-allowed": user(3),
  "limit-exceeded": user(3),
  "unsafe-path": user(3),
  "hub-unavailable": { exitCode: 4, retry: true, fault: "forge" },
  "execution-provider-unavailable": { exitCode: 4, retry: true, fault: "operator" },
  "queue-unavailable": { exitCode: 4, retry: true, fault: "operator" },
  "not-installed": { exitCode: 3, retry: false, fault: "user" },
  "damaged-state": { exitCode: 3, retry: false, fault: "operator" },
};

describe("the error table", () => {
  it("has a rule for every code, and no code without an expectation here", () => {
    expect([...ERROR_CODES].sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.entries(EXPECTED) as Array<[SafeLoraErrorCode, ErrorRule]>)("%s", (code, expected) => {
    expect(errorRule(code)).toEqual(expected);
    const error = new SafeLoraError("what is wrong", code);
    expect(ruleOf(error)).toEqual(expected);
    expect(isRetryable(error)).toBe(expected.retry);
    expect(isUsersToFix(error)).toBe(expected.fault === "user");
  });

  it("never asks the user to fix what a retry may fix", () => {
    for (const code of ERROR_CODES) expect(errorRule(code).retry && errorRule(code).fault === "user").toBe(false);
  });

  it("anything that is not a SafeLoraError is a bug: exit 1, retried, never the user's", () => {
    for (const error of [new Error("boom"), new TypeError("fetch failed"), new HubApiError("https://hub/x", 503), "a string"]) {
      expect(ruleOf(error)).toEqual({ exitCode: ExitCode.internal, retry: true, fault: "bug" });
      expect(isRetryable(error)).toBe(true);
      expect(isUsersToFix(error)).toBe(false);
    }
  });

  it("uses exactly the exit codes README.md documents", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("### Exit codes"), readme.indexOf("### Inputs that are refused"));
    const documented = [...section.matchAll(/^\| (\d+) \|/gm)].map((match) => Number(match[1]));
    expect(documented).toEqual([0, 1, 2, 3, 4]);
    expect(Object.values(ExitCode).sort()).toEqual(documented);
    for (const code of ERROR_CODES) expect(documented).toContain(errorRule(code).exitCode);
  });
});
