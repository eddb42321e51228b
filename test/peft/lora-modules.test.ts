import { describe, expect, it } from "vitest";
import { baseWeightCandidates, parseAdapterTensors } from "../../src/peft/lora-modules.js";

const key = (layer: number, module: string, factor: "A" | "B") => `base_model.model.model.layers.${layer}.self_attn.${module}.lora_${factor}.weight`;

describe("parseAdapterTensors", () => {
  it("pairs factors by module name whatever their order, and keeps biases aside", () => {
    const names = [
      key(1, "v_proj", "B"),
      "base_model.model.model.layers.1.self_attn.v_proj.lora_B.bias",
      key(0, "q_proj", "B"),
      key(1, "v_proj", "A"),
      key(0, "q_proj", "A"),
      "base_model.model.lm_head.weight",
    ];
    const { modules, untouched } = parseAdapterTensors(names, "adapter");
    expect(modules.map((m) => [m.name, m.loraAKey, m.loraBKey, m.layer, m.target])).toEqual([
      ["base_model.model.model.layers.0.self_attn.q_proj", key(0, "q_proj", "A"), key(0, "q_proj", "B"), 0, "q_proj"],
      ["base_model.model.model.layers.1.self_attn.v_proj", key(1, "v_proj", "A"), key(1, "v_proj", "B"), 1, "v_proj"],
    ]);
    expect(untouched).toEqual(["base_model.model.model.layers.1.self_attn.v_proj.lora_B.bias", "base_model.model.lm_head.weight"]);
  });

  it("handles a subset of layers (layers_to_transform) without shifting pairs", () => {
    const names = [key(3, "q_proj", "A"), key(3, "q_proj", "B"), key(7, "q_proj", "A"), key(7, "q_proj", "B")];
    expect(parseAdapterTensors(names, "adapter").modules.map((m) => m.layer)).toEqual([3, 7]);
  });

  it("orders modules within a layer as the block applies them", () => {
    const names = ["o_proj", "q_proj", "v_proj", "k_proj"].flatMap((m) => [key(0, m, "A"), key(0, m, "B")]);
    expect(parseAdapterTensors(names, "adapter").modules.map((m) => m.target)).toEqual(["q_proj", "k_proj", "v_proj", "o_proj"]);
  });

  it("accepts factors that still carry the adapter name", () => {
    const names = ["base_model.model.model.layers.0.mlp.up_proj.lora_A.default.weight", "base_model.model.model.layers.0.mlp.up_proj.lora_B.default.weight"];
    expect(parseAdapterTensors(names, "adapter").modules).toHaveLength(1);
  });

  it("refuses DoRA magnitude vectors", () => {
    const names = [key(0, "q_proj", "A"), key(0, "q_proj", "B"), "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"];
    expect(() => parseAdapterTensors(names, "adapter")).toThrow(/DoRA/);
  });

  it("refuses embedding adapters", () => {
    expect(() => parseAdapterTensors(["base_model.model.model.embed_tokens.lora_embedding_A"], "adapter")).toThrow(/embedding/);
  });

  it("refuses a lora_A without its lora_B", () => {
    expect(() => parseAdapterTensors([key(0, "q_proj", "A")], "adapter")).toThrow(/lora_A but no lora_B/);
  });
});

describe("baseWeightCandidates", () => {
  it("strips PEFT's wrapper to find the model's own weight name", () => {
    expect(baseWeightCandidates("base_model.model.model.layers.0.self_attn.q_proj")[0]).toBe("model.layers.0.self_attn.q_proj.weight");
  });
});
