import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, type CliRun } from "../helpers/cli.js";
import { copyGolden, type CaseCopy } from "../helpers/fixture-copy.js";

let fixture: CaseCopy;
beforeAll(() => {
  fixture = copyGolden("llama-gqa-qv");
});
afterAll(() => fixture.remove());

/** One line on stderr (not a stack trace), with this exit code. */
function expectOneLine(result: CliRun, code: number, message: RegExp) {
  expect(result.stderr.trim().split("\n")).toHaveLength(1);
  expect(result.stderr).toMatch(/^safe-lora: /);
  expect(result.stderr).toMatch(message);
  expect(result.stderr).not.toMatch(/internal error|TypeError/);
  expect(result.code).toBe(code);
}

// Port 9 on the loopback is closed: every request is refused, and retried as the README says, before the answer.
describe.concurrent("a Hub that cannot be reached: one line and exit 4", () => {
  it("--hub-url pointing at nothing", async () => {
    const result = await runCli(["patch", "--adapter", "acme/some-lora", "--hub-url", "http://127.0.0.1:9", "--out", join(fixture.root, "out-1")]);
    expectOneLine(result, 4, /taken for a Hub repo id, and cannot reach the Hub at http:\/\/127\.0\.0\.1:9 to read acme\/some-lora \([^)]+\); check --hub-url or HF_ENDPOINT and the network/);
  });

  it("offline, a relative path that does not exist and looks like org/name", async () => {
    const result = await runCli(["patch", "--adapter", "runs/lora", "--out", join(fixture.root, "out-2")]);
    expectOneLine(result, 4, /--adapter runs\/lora is not an existing folder, so it was taken for a Hub repo id, and cannot reach the Hub/);
  });

  it("offline, a local adapter with its pair named by Hub ids", async () => {
    const result = await runCli(["patch", "--adapter", fixture.adapter, "--base", "acme/base", "--aligned", "acme/chat", "--out", join(fixture.root, "out-3")]);
    expectOneLine(result, 4, /cannot reach the Hub at http:\/\/127\.0\.0\.1:9 to read acme\/(base|chat)/);
  });
});

describe("a local model folder whose config.json is not JSON", () => {
  it("is an input error (exit 3) in one line, not a stack trace", async () => {
    writeFileSync(join(fixture.base, "config.json"), "{ architectures: [LlamaForCausalLM");
    const result = await runCli(["patch", "--adapter", fixture.adapter, "--base", fixture.base, "--aligned", fixture.chat, "--out", join(fixture.root, "out-4")]);
    expectOneLine(result, 3, /base\/config\.json is not JSON \(.*\); point --base and --aligned at model folders saved by transformers/);
  });
});
