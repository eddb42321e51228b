import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { llamaShape, parseLlamaConfig } from "../../src/llama/llama-config.js";
import { loadLlamaLora } from "../../src/llama/llama-lora.js";
import { LocalFolder } from "../../src/storage/local-folder.js";
import { editJson } from "../helpers/fixture-copy.js";
import { MINIATURE } from "./miniature.js";

const shape = llamaShape(parseLlamaConfig(readFileSync(join(MINIATURE, "chat", "config.json"), "utf8"), "chat/config.json"));
const scratch: string[] = [];
afterAll(() => scratch.forEach((root) => rmSync(root, { recursive: true, force: true })));

/** The task-only adapter (r 8, alpha 16, q_proj and v_proj) with its config edited. */
async function loadEdited(edit: (config: Record<string, unknown>) => void) {
  const root = mkdtempSync(join(tmpdir(), "safe-lora-llama-lora-"));
  scratch.push(root);
  cpSync(join(MINIATURE, "adapter-task-only"), root, { recursive: true });
  editJson(join(root, "adapter_config.json"), edit);
  const files = new LocalFolder(root);
  try {
    return await loadLlamaLora(files, ".", shape);
  } finally {
    await files.close();
  }
}

describe("loadLlamaLora", () => {
  it("scales each module's update by alpha / r, as PEFT does", async () => {
    const lora = await loadEdited(() => {});
    expect(lora.slots).toHaveLength(8);
    expect(new Set(lora.slots.map((slot) => slot.scale))).toEqual(new Set([16 / 8]));
    expect(lora.slots[0]).toMatchObject({ weight: "model.layers.0.self_attn.q_proj.weight", rank: 8, dOut: 96, dIn: 96 });
    expect(lora.factors.size).toBe(16);
  });

  it("scales by alpha / √r with use_rslora, and takes alpha_pattern's alpha for the modules it names", async () => {
    expect(new Set((await loadEdited((config) => (config.use_rslora = true))).slots.map((slot) => slot.scale))).toEqual(new Set([16 / Math.sqrt(8)]));
    const patterned = await loadEdited((config) => (config.alpha_pattern = { "layers.1.self_attn.v_proj": 4 }));
    const scales = new Map(patterned.slots.map((slot) => [slot.weight, slot.scale]));
    expect(scales.get("model.layers.1.self_attn.v_proj.weight")).toBe(4 / 8);
    expect(scales.get("model.layers.1.self_attn.q_proj.weight")).toBe(2);
    expect(scales.get("model.layers.2.self_attn.v_proj.weight")).toBe(2);
  });

  it("refuses trained biases and modules_to_save, which it would not apply", async () => {
    await expect(loadEdited((config) => (config.bias = "lora_only"))).rejects.toMatchObject({ code: "unsupported-adapter", message: expect.stringContaining("bias") });
    await expect(loadEdited((config) => (config.modules_to_save = ["lm_head"]))).rejects.toMatchObject({ code: "unsupported-adapter", message: expect.stringContaining("modules_to_save") });
    await expect(loadEdited((config) => (config.use_dora = true))).rejects.toMatchObject({ code: "unsupported-adapter", message: expect.stringContaining("DoRA") });
  });
});
