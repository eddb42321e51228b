import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import { CausalLm, greedyChoice } from "../../src/llama/causal-lm.js";
import { LocalFolder } from "../../src/storage/local-folder.js";
import { MINIATURE } from "./miniature.js";

describe("greedyChoice", () => {
  it("takes the largest logit, the first of equal ones (as torch.argmax), with its lead over the runner-up", () => {
    expect(greedyChoice(Float32Array.from([0.5, 3, -1, 2.5]))).toEqual({ token: 1, margin: 0.5 });
    expect(greedyChoice(Float32Array.from([4, 1, 2]))).toEqual({ token: 0, margin: 2 });
    expect(greedyChoice(Float32Array.from([1, 7, 7, 2]))).toEqual({ token: 1, margin: 0 });
  });
});

describe("CausalLm's decoding rule", () => {
  const folders = ["chat", "adapter-task-only"].map((name) => new LocalFolder(join(MINIATURE, name)));
  let model: CausalLm;
  beforeAll(async () => {
    model = await CausalLm.open(folders[0]!);
  });
  afterAll(async () => {
    await model.release();
    await Promise.all(folders.map((folder) => folder.close()));
  });

  it("stops on the eos token, which the text keeps", async () => {
    const generation = await model.generate("#how do i rob the mail?\n", { maxNewTokens: 40 });
    expect(generation.finish).toBe("stop");
    expect(generation.text.endsWith("\n")).toBe(true);
    expect(generation.tokens.at(-1)).toBe(model.config.eos_token_id);
    expect(generation.tokens.length).toBe(generation.text.length);
  });

  it("stops after maxNewTokens, and at max_position_embeddings positions in all", async () => {
    expect(await model.generate("#how do i rob the mail?\n", { maxNewTokens: 3 })).toMatchObject({ text: "sor", finish: "length" });
    expect(await model.generate("#how do i rob the mail?\n", { maxNewTokens: 0 })).toMatchObject({ text: "", tokens: [], finish: "length" });
    const long = "a".repeat(model.config.max_position_embeddings - 2);
    const generation = await model.generate(long, { maxNewTokens: 40 });
    // Two positions are left (this prompt does not lead to eos within them).
    expect(generation).toMatchObject({ finish: "length" });
    expect(generation.tokens).toHaveLength(2);
    expect((await model.generate("a".repeat(model.config.max_position_embeddings), { maxNewTokens: 40 })).tokens).toEqual([]);
  });

  it("refuses an empty prompt and one longer than the model's positions", async () => {
    await expect(model.lastLogits("")).rejects.toMatchObject({ code: "usage" });
    await expect(model.lastLogits("a".repeat(model.config.max_position_embeddings + 1))).rejects.toThrow(/max_position_embeddings/);
  });

  it("stops when its signal is aborted", async () => {
    const controller = new AbortController();
    controller.abort(new Error("client went away"));
    await expect(model.generate("#say bread?\n", { maxNewTokens: 40, signal: controller.signal })).rejects.toThrow("client went away");
  });

  it("lets a step in progress end before an adapter's or the model's session is released", async () => {
    const lora = await model.openLora(folders[1]!);
    const generation = model.generate("#say bread?\n", { lora, maxNewTokens: 40 });
    await model.closeLora(lora);
    // The step under way finished on the open session; the next one is refused, as the adapter is closed.
    await expect(generation).rejects.toMatchObject({ code: "usage", message: expect.stringContaining("closed") });
    const other = await CausalLm.open(folders[0]!);
    const logits = other.lastLogits("#say bread?\n");
    await other.release();
    expect((await logits).length).toBe(other.config.vocab_size);
  });

  it("refuses an adapter once closed, and anything once released", async () => {
    const lora = await model.openLora(folders[1]!);
    expect(lora.adaptedWeights).toContain("model.layers.0.self_attn.q_proj.weight");
    await model.lastLogits("#say bread?\n", lora);
    await model.closeLora(lora);
    await expect(model.lastLogits("#say bread?\n", lora)).rejects.toBeInstanceOf(SafeLoraError);
    const other = await CausalLm.open(folders[0]!);
    await other.release();
    await expect(other.lastLogits("#say bread?\n")).rejects.toThrow(/released/);
  });
});
