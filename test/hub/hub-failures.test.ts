import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { folderFiles, seedRepo } from "../../src/local-hub/seed.js";
import { SafeLoraReport } from "../../src/report/schema.js";
import { runCli } from "../helpers/cli.js";
import { goldenPath } from "../helpers/golden.js";
import { goldenHub, type GoldenHub } from "../helpers/hub-fixtures.js";
import { readForRewrite } from "../helpers/tensors.js";
import { serializeSafetensors } from "../../src/safetensors/write.js";

let fixture: GoldenHub;
beforeEach(async () => {
  fixture = await goldenHub("llama-gqa-qv");
});
afterEach(() => fixture.close());

const adapterConfig = JSON.parse(readFileSync(goldenPath("llama-gqa-qv", "adapter", "adapter_config.json"), "utf8")) as Record<string, unknown>;

/** An adapter repo with the golden weights and the given config changes and card. */
async function adapterRepo(name: string, config: Record<string, unknown>, card?: string) {
  await seedRepo(fixture.hub, name, [
    { path: "adapter_model.safetensors", diskPath: goldenPath("llama-gqa-qv", "adapter", "adapter_model.safetensors") },
    { path: "adapter_config.json", data: JSON.stringify({ ...adapterConfig, ...config }) },
    ...(card ? [{ path: "README.md", data: card }] : []),
  ]);
}

async function patch(...args: string[]) {
  return runCli(["patch", ...args, "--out", join(fixture.work, "out"), "--json"], fixture.env);
}

async function expectRefusal(run: Promise<{ code: number; stderr: string }>, message: RegExp, code = 3) {
  const result = await run;
  expect(result.stderr.trim().split("\n").at(-1)).toMatch(message);
  expect(result.code).toBe(code);
}

describe("finding the pair", () => {
  it("falls back to the adapter card's base_model when the config names a local path", async () => {
    await adapterRepo("acme/from-card", { base_model_name_or_path: "/home/me/checkpoints/chat" }, `---\nbase_model: ${fixture.ids.chat}\n---\n`);
    const result = await patch("--adapter", "acme/from-card");
    expect(result.code).toBe(0);
    const report = SafeLoraReport.parse(JSON.parse(result.stdout));
    expect(report.inputs.aligned).toMatchObject({ location: fixture.ids.chat, resolvedBy: "adapter-card" });
  });

  it("maps a known re-upload to its original and takes the base from the registry", async () => {
    // The registry pairs meta-llama/Llama-2-7b-chat-hf with meta-llama/Llama-2-7b-hf; tiny stand-ins are served under those ids.
    await seedRepo(fixture.hub, "meta-llama/Llama-2-7b-chat-hf", await folderFiles(goldenPath("llama-gqa-qv", "chat")));
    await seedRepo(fixture.hub, "meta-llama/Llama-2-7b-hf", await folderFiles(goldenPath("llama-gqa-qv", "base")));
    await adapterRepo("acme/qlora", { base_model_name_or_path: "unsloth/llama-2-7b-chat-bnb-4bit" });
    const result = await patch("--adapter", "acme/qlora");
    expect(result.stderr).not.toMatch(/safe-lora: /);
    const report = SafeLoraReport.parse(JSON.parse(result.stdout));
    expect(report.inputs.aligned.location).toBe("meta-llama/Llama-2-7b-chat-hf");
    expect(report.inputs.aligned.resolvedBy).toMatch(/unsloth\/llama-2-7b-chat-bnb-4bit is a copy of meta-llama\/Llama-2-7b-chat-hf/);
    expect(report.inputs.base).toMatchObject({ location: "meta-llama/Llama-2-7b-hf", resolvedBy: "registry" });
  });

  it("unusable base id: a local path and no card", async () => {
    await adapterRepo("acme/no-card", { base_model_name_or_path: "/home/me/checkpoints/chat" });
    await expectRefusal(patch("--adapter", "acme/no-card"), /cannot tell which aligned model .*"\/home\/me\/checkpoints\/chat" is not a Hub id.*Pass --aligned/);
  });

  it("no pair: not in the registry and the model tree turned off", async () => {
    await expectRefusal(patch("--adapter", fixture.ids.adapter, "--no-model-tree"), /not in the registry of known pairs.*model tree is turned off\. Pass --base/);
  });

  it("no pair: the aligned model's card names no base", async () => {
    await seedRepo(fixture.hub, fixture.ids.chat, [{ path: "README.md", data: "# a chat model without card metadata\n" }]);
    await expectRefusal(patch("--adapter", fixture.ids.adapter), /no base model for test-org\/llama-gqa-qv-chat.*Pass --base/);
  });

  it("an adapter trained on the unaligned base", async () => {
    await adapterRepo("acme/on-base", { base_model_name_or_path: "meta-llama/Meta-Llama-3-8B" });
    await expectRefusal(patch("--adapter", "acme/on-base"), /trained on meta-llama\/Meta-Llama-3-8B, the unaligned base of Llama 3 8B: it has no alignment to restore/);
  });

  it("a quantized source named by the adapter", async () => {
    await adapterRepo("acme/on-gptq", { base_model_name_or_path: "someone/obscure-chat-GPTQ" });
    await expectRefusal(patch("--adapter", "acme/on-gptq"), /"someone\/obscure-chat-GPTQ" is a quantized copy/);
  });

  it("a quantized checkpoint given as --aligned", async () => {
    await seedRepo(fixture.hub, "acme/chat-4bit", [
      ...(await folderFiles(goldenPath("llama-gqa-qv", "chat"))).filter((f) => f.path !== "config.json"),
      { path: "config.json", data: JSON.stringify({ architectures: ["LlamaForCausalLM"], quantization_config: { quant_method: "bitsandbytes", load_in_4bit: true } }) },
    ]);
    await expectRefusal(patch("--adapter", fixture.ids.adapter, "--aligned", "acme/chat-4bit"), /acme\/chat-4bit is a quantized checkpoint and cannot serve as the aligned model/);
  });
});

describe("checking the pair", () => {
  it("not a pair by architecture", async () => {
    await seedRepo(fixture.hub, fixture.ids.base, [{ path: "config.json", data: JSON.stringify({ architectures: ["MistralForCausalLM"], model_type: "mistral" }) }]);
    await expectRefusal(patch("--adapter", fixture.ids.adapter), /is a MistralForCausalLM but .* is a LlamaForCausalLM: not a base\/aligned pair/);
  });

  it("not a pair by shape", async () => {
    // The all-linear case has the same architecture but other sizes.
    await seedRepo(fixture.hub, fixture.ids.base, await folderFiles(goldenPath("llama-all-linear", "base")));
    await expectRefusal(patch("--adapter", fixture.ids.adapter), /has shape \[96,96\] in the base model but \[64,64\] in the aligned model/);
  });

  it("not a pair by distance: same shapes, unrelated weights", async () => {
    // Reversing every tensor keeps shapes and norms but destroys any relation to the chat model.
    const { metadata, tensors } = await readForRewrite(goldenPath("llama-gqa-qv", "base", "model.safetensors"));
    const scrambled = tensors.map((t) => ({ ...t, data: new Uint8Array(new Float32Array(t.data.slice().buffer).reverse().buffer) }));
    await seedRepo(fixture.hub, fixture.ids.base, [{ path: "model.safetensors", data: Buffer.concat(serializeSafetensors(metadata, scrambled)) }]);
    await expectRefusal(patch("--adapter", fixture.ids.adapter), /does not look like a fine-tune of .*cosine -?0\.\d+ and ‖V‖\/‖W_base‖ = \d\.\d+/);
  });

  it("a gated model the token may not read", async () => {
    fixture.hub.store.repos.get(fixture.ids.base)!.gated = "manual";
    await expectRefusal(patch("--adapter", fixture.ids.adapter), /test-org\/llama-gqa-qv-base is gated or private and this token may not read it.*Accept its conditions at http:\/\/127\.0\.0\.1:\d+\/test-org\/llama-gqa-qv-base/);
  });

  it("a private repo without a token", async () => {
    fixture.hub.store.repos.get(fixture.ids.adapter)!.private = true;
    const result = await runCli(["patch", "--adapter", fixture.ids.adapter, "--out", join(fixture.work, "out")], { ...fixture.env, HF_TOKEN: "" });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/acme\/llama-gqa-qv-lora was not found or is private .*set HF_TOKEN/);
  });

  it("a missing file", async () => {
    const repo = fixture.hub.store.repos.get(fixture.ids.base)!;
    fixture.hub.store.commit(repo, "refs/heads/main", new Map([["model.safetensors", null]]), { title: "remove weights", authorId: repo.ownerId });
    await expectRefusal(patch("--adapter", fixture.ids.adapter), /llama-gqa-qv-base@[0-9a-f]{12} has neither model.safetensors nor model.safetensors.index.json/);
  });

  it("a missing revision", async () => {
    await expectRefusal(patch("--adapter", `${fixture.ids.adapter}@v9`), /acme\/llama-gqa-qv-lora has no revision "v9"; use a branch, tag or commit sha that exists/);
  });

  it("a repo that does not exist", async () => {
    await expectRefusal(patch("--adapter", "acme/nothing-here"), /acme\/nothing-here: not found on http:\/\/127\.0\.0\.1:\d+ .*check the id/);
  });
});
