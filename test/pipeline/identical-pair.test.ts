import { cpSync, existsSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { copyGolden, rewriteSafetensors, type CaseCopy } from "../helpers/fixture-copy.js";
import { goldenHub, weightBytesServed } from "../helpers/hub-fixtures.js";

/** Exit 3, the reason as the last line, and no output folder. */
function expectNotAPair(result: { code: number; stderr: string }, out: string, reason: RegExp) {
  const lines = result.stderr.trim().split("\n");
  expect(lines.at(-1)).toMatch(/^safe-lora: /);
  expect(lines.at(-1)).toMatch(reason);
  expect(result.code).toBe(3);
  expect(existsSync(out)).toBe(false);
}

const SAME = /have the same weights in every module the adapter changes, so there is no alignment direction to restore: choose as base the unaligned release/;

describe("a base/aligned 'pair' that is one model", () => {
  let fixture: CaseCopy;
  let out: string;
  beforeEach(() => {
    fixture = copyGolden("llama-gqa-qv");
    out = join(fixture.root, "out");
  });
  afterEach(() => fixture.remove());

  it("is refused when the same folder is passed as both (no variant that changes nothing)", async () => {
    const result = await runCli(["patch", "--adapter", fixture.adapter, "--base", fixture.chat, "--aligned", fixture.chat, "--out", out]);
    expectNotAPair(result, out, SAME);
  });

  it("is refused when two folders hold the same weights", async () => {
    const copy = join(fixture.root, "chat-copy");
    cpSync(fixture.chat, copy, { recursive: true });
    const result = await runCli(["patch", "--adapter", fixture.adapter, "--base", copy, "--aligned", fixture.chat, "--out", out]);
    expectNotAPair(result, out, SAME);
  });

  it("is refused when a base weight is all zeros, which skipped the pair check", async () => {
    await rewriteSafetensors(join(fixture.base, "model.safetensors"), (tensors) =>
      tensors.map((t) => (t.name === "model.layers.0.self_attn.q_proj.weight" ? { ...t, data: new Uint8Array(t.data.byteLength) } : t)),
    );
    const result = await runCli(["patch", "--adapter", fixture.adapter, "--base", fixture.base, "--aligned", fixture.chat, "--out", out]);
    expectNotAPair(result, out, /"model\.layers\.0\.self_attn\.q_proj\.weight" is all zeros in .*base.*, which a released model never is/);
  });

  it("is refused when an aligned weight is all zeros", async () => {
    await rewriteSafetensors(join(fixture.chat, "model.safetensors"), (tensors) =>
      tensors.map((t) => (t.name === "model.layers.1.self_attn.v_proj.weight" ? { ...t, data: new Uint8Array(t.data.byteLength) } : t)),
    );
    const result = await runCli(["patch", "--adapter", fixture.adapter, "--base", fixture.base, "--aligned", fixture.chat, "--out", out]);
    expectNotAPair(result, out, /"model\.layers\.1\.self_attn\.v_proj\.weight" is all zeros in .*chat/);
  });
});

describe("on the Hub", () => {
  it("refuses the same repo as base and aligned before reading a weight", async () => {
    const fixture = await goldenHub("llama-gqa-qv");
    try {
      const out = join(fixture.work, "out");
      const result = await runCli(["patch", "--adapter", fixture.ids.adapter, "--base", fixture.ids.chat, "--aligned", fixture.ids.chat, "--out", out], fixture.env);
      expectNotAPair(result, out, SAME);
      expect(weightBytesServed(fixture.hub, fixture.ids.chat)).toBe(0);
    } finally {
      await fixture.close();
    }
  });
});
