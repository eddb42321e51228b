import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { encodeFromFloat32 } from "../../src/safetensors/dtype.js";
import { SafeLoraReport } from "../../src/report/schema.js";
import { runCli } from "../helpers/cli.js";
import { copyGolden, editJson, rewriteSafetensors, type CaseCopy } from "../helpers/fixture-copy.js";
import { cudaProviderInstalled } from "../helpers/onnxruntime.js";
import { readAllTensors, readForRewrite } from "../helpers/tensors.js";

let fixture: CaseCopy;
let out: string;
beforeEach(() => {
  fixture = copyGolden("llama-gqa-qv");
  out = join(fixture.root, "out");
});
afterEach(() => fixture.remove());

const patch = (...extra: string[]) =>
  runCli(["patch", "--adapter", fixture.adapter, "--base", fixture.base, "--aligned", fixture.chat, "--out", out, ...extra]);

/** Nothing half-written: no output folder and no staging folder next to it. */
function expectNoOutput() {
  expect(existsSync(out)).toBe(false);
  expect(readdirSync(fixture.root).filter((name) => name.includes("staging"))).toEqual([]);
}

async function expectRefusal(run: Promise<{ code: number; stderr: string; stdout: string }>, code: number, message: RegExp) {
  const result = await run;
  expect(result.code).toBe(code);
  // One clear line after any progress lines, not a stack trace.
  const lines = result.stderr.trim().split("\n");
  expect(lines.filter((line) => !/^\[\s*\d+\/\d+\]/.test(line))).toHaveLength(1);
  expect(lines.at(-1)).toMatch(/^safe-lora: /);
  expect(lines.at(-1)).toMatch(message);
  expectNoOutput();
}

describe("safe-lora patch: usage errors (exit 2)", () => {
  it("a path that is not a folder", () => expectRefusal(runCli(["patch", "--adapter", "/no/such/dir", "--base", fixture.base, "--aligned", fixture.chat, "--out", out]), 2, /--adapter \/no\/such\/dir: not an existing folder, nor a Hub repo id/));
  it("a missing --adapter", () => expectRefusal(runCli(["patch", "--base", fixture.base, "--out", out]), 2, /missing --adapter/));
  it("a local --aligned without --base", () => expectRefusal(runCli(["patch", "--adapter", fixture.adapter, "--aligned", fixture.chat, "--out", out]), 2, /--aligned is a local folder.*pass --base/));
  it("an unknown flag", () => expectRefusal(patch("--tau", "0.3"), 2, /Unknown option '--tau'.*--help/));
  it("a bad selection", () => expectRefusal(patch("--select", "threshold:2"), 2, /the threshold value must be a number from -1 to 1/));
  it("a bad --operator", () => expectRefusal(patch("--operator", "subspace:1.5"), 2, /"subspace:1\.5": subspace takes a whole number of directions from 1 to \d+ or an energy share strictly between 0 and 1/));
  it("a bad --ep", () => expectRefusal(patch("--ep", "tpu"), 2, /--ep tpu: choose one of auto, cpu, cuda, webgpu/));
  it("a bad SAFE_LORA_EP", () => expectRefusal(runCli(["patch", "--adapter", fixture.adapter, "--base", fixture.base, "--aligned", fixture.chat, "--out", out], { SAFE_LORA_EP: "tpu" }), 2, /SAFE_LORA_EP/));
  it("an unknown command", async () => {
    const result = await runCli(["pach"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unknown command "pach"/);
  });

  it("an output folder that is not empty is left alone (--force: test/cli/patch-output.test.ts)", async () => {
    mkdirSync(out);
    writeFileSync(join(out, "keep.txt"), "mine");
    await expect(patch()).resolves.toMatchObject({ code: 2, stderr: expect.stringMatching(/already exists and is not empty; pass --force/) });
    expect(readdirSync(out)).toEqual(["keep.txt"]);
  });
});

describe("safe-lora patch: execution provider (exit 4)", () => {
  it.skipIf(cudaProviderInstalled)("cuda when onnxruntime-node has no CUDA provider", () =>
    expectRefusal(patch("--ep", "cuda"), 4, /execution provider "cuda" is not available here.*--ep cpu/));
});

describe("safe-lora patch: inputs that cannot be patched (exit 3)", () => {
  it("no adapter_config.json", () => {
    rmSync(join(fixture.adapter, "adapter_config.json"));
    return expectRefusal(patch(), 3, /has no adapter_config.json: point --adapter at a folder saved by PEFT/);
  });

  it("adapter_config.json that is not JSON", () => {
    writeFileSync(join(fixture.adapter, "adapter_config.json"), "{ r: 8");
    return expectRefusal(patch(), 3, /adapter_config.json is not JSON/);
  });

  it("adapter_config.json with a wrong type", () => {
    editJson(join(fixture.adapter, "adapter_config.json"), (json) => (json.r = "eight"));
    return expectRefusal(patch(), 3, /not a valid PEFT config: r: /);
  });

  it("a PEFT method other than LoRA", () => {
    editJson(join(fixture.adapter, "adapter_config.json"), (json) => (json.peft_type = "IA3"));
    return expectRefusal(patch(), 3, /is a IA3 adapter; Safe LoRA patches LoRA adapters only/);
  });

  it("a DoRA adapter", () => {
    editJson(join(fixture.adapter, "adapter_config.json"), (json) => (json.use_dora = true));
    return expectRefusal(patch(), 3, /DoRA adapter/);
  });

  it("fan_in_fan_out", () => {
    editJson(join(fixture.adapter, "adapter_config.json"), (json) => (json.fan_in_fan_out = true));
    return expectRefusal(patch(), 3, /fan_in_fan_out/);
  });

  it("an embedding adapter", async () => {
    await rewriteSafetensors(join(fixture.adapter, "adapter_model.safetensors"), (tensors) => [
      ...tensors,
      { name: "base_model.model.model.embed_tokens.lora_embedding_A", dtype: "F32", shape: [8, 4], data: new Uint8Array(128) },
    ]);
    return expectRefusal(patch(), 3, /adapts an embedding layer/);
  });

  it("a pickled adapter, which is never opened", () => {
    rmSync(join(fixture.adapter, "adapter_model.safetensors"));
    writeFileSync(join(fixture.adapter, "adapter_model.bin"), "not really a pickle");
    return expectRefusal(patch(), 3, /adapter_model.bin, a pickle .* never opened.*safe_serialization=True/);
  });

  it("a pickled base model", () => {
    rmSync(join(fixture.base, "model.safetensors"));
    writeFileSync(join(fixture.base, "pytorch_model.bin"), "not really a pickle");
    return expectRefusal(patch(), 3, /pytorch_model.bin \(a pickle.*never opened/);
  });

  it("a damaged adapter file", () => {
    const path = join(fixture.adapter, "adapter_model.safetensors");
    writeFileSync(path, readFileSync(path).subarray(0, 5000));
    return expectRefusal(patch(), 3, /adapter_model.safetensors is not a valid safetensors file: .*truncated file/);
  });

  it("a base model without a module's weight", async () => {
    await rewriteSafetensors(join(fixture.base, "model.safetensors"), (tensors) => tensors.filter((t) => t.name !== "model.layers.2.self_attn.v_proj.weight"));
    return expectRefusal(patch(), 3, /has no weight for adapter module "base_model.model.model.layers.2.self_attn.v_proj"/);
  });

  it("base and aligned of different shapes", async () => {
    // Same byte length, different shape: only the header differs.
    await rewriteSafetensors(join(fixture.chat, "model.safetensors"), (tensors) =>
      tensors.map((t) => (t.name === "model.layers.1.self_attn.q_proj.weight" ? { ...t, shape: [32, 128] } : t)),
    );
    return expectRefusal(patch(), 3, /shape \[64,64\] in the base model but \[32,128\] in the aligned model/);
  });

  it("an adapter trained on a model of another size", async () => {
    await rewriteSafetensors(join(fixture.adapter, "adapter_model.safetensors"), (tensors) =>
      tensors.map((t) => (t.name.endsWith("layers.0.self_attn.q_proj.lora_A.weight") ? { ...t, shape: [8, 32], data: t.data.subarray(0, 8 * 32 * 4) } : t)),
    );
    return expectRefusal(patch(), 3, /do not fit the model's weight \[64,64\]/);
  });

  it("quantized (integer) base weights", async () => {
    await rewriteSafetensors(join(fixture.base, "model.safetensors"), (tensors) =>
      tensors.map((t) => (t.name === "model.layers.0.self_attn.q_proj.weight" ? { ...t, dtype: "I8", data: new Uint8Array(64 * 64) } : t)),
    );
    return expectRefusal(patch(), 3, /stored as I8 .*quantized or integer weights cannot serve/);
  });

  it("NaN in the last module's weights: fails after the others were computed, writes nothing", async () => {
    await rewriteSafetensors(join(fixture.chat, "model.safetensors"), (tensors) =>
      tensors.map((t) => {
        if (t.name !== "model.layers.3.self_attn.v_proj.weight") return t;
        const values = new Float32Array(t.data.slice().buffer);
        values[17] = Number.NaN;
        return { ...t, data: encodeFromFloat32(values, "F32") };
      }),
    );
    return expectRefusal(patch(), 3, /layers.3.self_attn.v_proj.*NaN or infinite/);
  });
});

describe("safe-lora patch: modules without a cosine", () => {
  it("leaves a zero update unchanged and says why", async () => {
    const zeroed = "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight";
    await rewriteSafetensors(join(fixture.adapter, "adapter_model.safetensors"), (tensors) =>
      tensors.map((t) => (t.name === zeroed ? { ...t, data: new Uint8Array(t.data.byteLength) } : t)),
    );
    const result = await patch("--select", "threshold:1", "--json");
    expect(result.code).toBe(0);
    const report = SafeLoraReport.parse(JSON.parse(result.stdout));
    const module = report.modules.find((m) => m.name === zeroed.replace(".lora_B.weight", ""))!;
    expect(module).toMatchObject({ cosine: null, projected: false, skipped: "zero-update" });
    expect(report.projectedCount).toBe(7);
    const written = await readAllTensors(join(out, "adapter_model.safetensors"));
    expect(written.tensors.get(zeroed)!.bytes.every((byte) => byte === 0)).toBe(true);
    expect(readFileSync(join(out, "README.md"), "utf8")).toMatch(/unchanged: the update is zero/);
  });

  it("leaves a module alone where base and aligned are identical (an identical pair: test/pipeline/identical-pair.test.ts)", async () => {
    const weight = "model.layers.0.self_attn.q_proj.weight";
    const { tensors: baseTensors } = await readForRewrite(join(fixture.base, "model.safetensors"));
    await rewriteSafetensors(join(fixture.chat, "model.safetensors"), (tensors) =>
      tensors.map((t) => (t.name === weight ? { ...t, data: baseTensors.find((b) => b.name === weight)!.data } : t)),
    );
    const result = await patch("--select", "threshold:1", "--json");
    expect(result.code).toBe(0);
    const report = SafeLoraReport.parse(JSON.parse(result.stdout));
    const same = report.modules.filter((m) => m.skipped === "zero-alignment");
    expect(same.map((m) => m.name)).toEqual(["base_model.model.model.layers.0.self_attn.q_proj"]);
    expect(same[0]!.projected).toBe(false);
    expect(report.projectedCount).toBe(report.moduleCount - 1);
  });
});

describe("safe-lora patch: storage dtypes", () => {
  it("patches bf16 models and a bf16 adapter, keeping every dtype, key and shape", async () => {
    const toBf16 = (path: string) =>
      rewriteSafetensors(path, (tensors) =>
        tensors.map((t) => ({ ...t, dtype: "BF16" as const, data: encodeFromFloat32(new Float32Array(t.data.slice().buffer), "BF16") })),
      );
    await toBf16(join(fixture.base, "model.safetensors"));
    await toBf16(join(fixture.chat, "model.safetensors"));
    await toBf16(join(fixture.adapter, "adapter_model.safetensors"));
    const result = await patch("--select", "threshold:0.33", "--json");
    expect(result.code).toBe(0);
    const report = SafeLoraReport.parse(JSON.parse(result.stdout));
    expect(report.projectedCount).toBeGreaterThan(0);
    const input = await readAllTensors(join(fixture.adapter, "adapter_model.safetensors"));
    const output = await readAllTensors(join(out, "adapter_model.safetensors"));
    const projected = new Set(report.modules.filter((m) => m.projected).map((m) => `${m.name}.lora_B.weight`));
    for (const [name, tensor] of input.tensors) {
      const written = output.tensors.get(name)!;
      expect([written.dtype, written.shape]).toEqual([tensor.dtype, tensor.shape]);
      expect(Buffer.from(written.bytes).equals(Buffer.from(tensor.bytes)), name).toBe(!projected.has(name));
    }
  });
});

describe("safe-lora patch: output", () => {
  it("prints a summary table and writes the five files with a report the contract describes", async () => {
    const result = await patch("--select", "top-k:3");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/Safe LoRA: projected 3 of 8 modules \(top-k:3, τ = 0\.21632\)/);
    expect(result.stdout).toMatch(/layer\s+module\s+cosine\s+projected/);
    expect(result.stderr).toMatch(/\[8\/8\]/);
    const report = JSON.parse(readFileSync(join(out, "safe-lora-report.json"), "utf8"));
    expect(report).toMatchObject({
      schemaVersion: 1,
      method: "safe-lora",
      selection: { mode: "top-k", value: 3, threshold: 0.21632 },
      projectedCount: 3,
      moduleCount: 8,
      bytesRead: { base: expect.any(Number), aligned: expect.any(Number), adapter: expect.any(Number) },
    });
    expect(report.modules[0]).toMatchObject({ name: "base_model.model.model.layers.0.self_attn.q_proj", cosine: 0.19846, projected: true });
    const card = readFileSync(join(out, "README.md"), "utf8");
    expect(card).toMatch(/^---\nlibrary_name: peft/);
    expect(card).toMatch(/Projected:\*\* 3 of 8 modules/);
    expect(card).toMatch(/^safe-lora patch --adapter .* --select top-k:3$/m);
    const svg = readFileSync(join(out, "similarity.svg"), "utf8");
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg.match(/fill="#f97316" rx/g)).toHaveLength(3);
  });

  it("--operator subspace:4: the report and card say which operator ran, and the card's command makes it again", async () => {
    const result = await patch("--select", "top-k:3", "--operator", "subspace:4");
    expect(result.code).toBe(0);
    const report = SafeLoraReport.parse(JSON.parse(readFileSync(join(out, "safe-lora-report.json"), "utf8")));
    expect(report.operator).toMatchObject({ kind: "subspace", setting: "subspace:4", formula: expect.stringMatching(/^P = U_k U_kᵀ/) });
    expect(report.modules.filter((m) => m.projected).every((m) => m.subspaceRank === 4 && m.capturedEnergy! > 0)).toBe(true);
    const card = readFileSync(join(out, "README.md"), "utf8");
    expect(card).toMatch(/^safe-lora patch --adapter .* --select top-k:3 --operator subspace:4$/m);
    expect(card).toMatch(/\*\*Operator:\*\* `subspace:4` — P = U_k U_kᵀ/);
    expect(card).toMatch(/\| layer \| module \| cos \| projected \| ‖PB‖\/‖B‖ \| k \| energy \| note \|/);
  });

  it("reads only the target tensors of the base and aligned models", async () => {
    const result = await patch("--json");
    const report = SafeLoraReport.parse(JSON.parse(result.stdout));
    const base = await readAllTensors(join(fixture.base, "model.safetensors"));
    const targets = report.modules.map((m) => m.name.replace("base_model.model.", "") + ".weight");
    const headerBytes = 8 + Number(readFileSync(join(fixture.base, "model.safetensors")).readBigUInt64LE(0));
    const targetBytes = targets.reduce((sum, name) => sum + base.tensors.get(name)!.bytes.byteLength, 0);
    // …plus config.json, read to check that both declare the same architecture.
    const configBytes = readFileSync(join(fixture.base, "config.json")).byteLength;
    expect(report.bytesRead.base).toBe(headerBytes + targetBytes + configBytes);
    expect(report.bytesRead.aligned).toBe(headerBytes + targetBytes + configBytes);
  });
});
