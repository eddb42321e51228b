import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

describe("the safe-lora bin", () => {
  it("runs the CLI that npm install built", () => {
    const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    const output = execFileSync(process.execPath, [new URL("../../bin/safe-lora.js", import.meta.url).pathname, "--version"], { encoding: "utf8" });
    expect(output.trim()).toBe(version);
  });
});
