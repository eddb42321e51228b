import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import { CausalLm, type LlamaLora } from "../../src/llama/causal-lm.js";
import { LocalFolder } from "../../src/storage/local-folder.js";
import { editJson, rewriteSafetensors } from "../helpers/fixture-copy.js";
import { shardCheckpoint } from "../helpers/shard.js";
import { decodingLimits, MINIATURE, PROMPT_KINDS, readReference } from "./miniature.js";

const reference = readReference();
const folders: LocalFolder[] = [];
const folder = (name: string) => {
  const opened = new LocalFolder(join(MINIATURE, name));
  folders.push(opened);
  return opened;
};

/** reference.json's models: base, chat, and each adapter applied on chat. */
const models = new Map<string, { model: CausalLm; lora: LlamaLora | null }>();
let base: CausalLm;
let chat: CausalLm;

beforeAll(async () => {
  base = await CausalLm.open(folder("base"));
  chat = await CausalLm.open(folder("chat"));
  models.set("base", { model: base, lora: null });
  models.set("chat", { model: chat, lora: null });
  for (const adapter of ["harmful-mix", "task-only"]) models.set(`chat+${adapter}`, { model: chat, lora: await chat.openLora(folder(`adapter-${adapter}`)) });
});

afterAll(async () => {
  await base?.release();
  await chat?.release();
  await Promise.all(folders.map((opened) => opened.close()));
});

describe("the forward pass against PyTorch's (reference.json)", () => {
  it("covers every model of reference.json", () => {
    expect([...models.keys()].sort()).toEqual(Object.keys(reference.results).sort());
    expect([...models.keys()].sort()).toEqual(Object.keys(reference.logit_probes.last_position_logits).sort());
  });

  it("gives every probe prompt's last-position logits within 1e-4 of PyTorch's, for every model", async () => {
    const { prompts, last_position_logits: expected } = reference.logit_probes;
    expect(prompts.length).toBeGreaterThan(0);
    for (const [name, { model, lora }] of models) {
      let maxDifference = 0;
      for (const [i, prompt] of prompts.entries()) {
        const logits = await model.lastLogits(prompt, lora);
        const want = expected[name]![i]!;
        expect(logits.length).toBe(want.length);
        for (const [j, value] of want.entries()) maxDifference = Math.max(maxDifference, Math.abs(logits[j]! - value));
      }
      console.log(`${name}: max abs logit difference ${maxDifference.toExponential(3)} over ${prompts.length} probe prompts`);
      expect(maxDifference).toBeLessThan(1e-4);
    }
  });

  it("generates greedily exactly what PyTorch generated, for every prompt of every model (near-ties reported, not forced)", async () => {
    const { maxNewTokens, maxPositions } = decodingLimits(reference);
    expect(base.config.max_position_embeddings).toBe(maxPositions);
    let compared = 0;
    const nearTies: string[] = [];
    const mismatches: string[] = [];
    for (const [name, { model, lora }] of models) {
      for (const kind of PROMPT_KINDS) {
        const expected = reference.results[name]!.generations[kind];
        expect(expected.length).toBe(reference.prompts[kind].length);
        for (const [i, prompt] of reference.prompts[kind].entries()) {
          const generation = await model.generate(prompt, { lora, maxNewTokens });
          compared++;
          const want = expected[i]!;
          for (const tie of generation.nearTies) nearTies.push(`${name} ${kind}[${i}] step ${tie.step}: margin ${tie.margin.toExponential(2)}`);
          if (generation.text === want) {
            expect(generation.finish).toBe(want.endsWith("\n") ? "stop" : "length");
            continue;
          }
          // A difference is excused only when a near-tie came at or before the first character that differs.
          let firstDifference = 0;
          while (generation.text[firstDifference] === want[firstDifference]) firstDifference++;
          const excused = generation.nearTies.some((tie) => tie.step <= firstDifference);
          mismatches.push(`${name} ${kind}[${i}] ${JSON.stringify(prompt)}: got ${JSON.stringify(generation.text)}, PyTorch ${JSON.stringify(want)}${excused ? " (after a near-tie)" : ""}`);
        }
      }
    }
    console.log(`greedy generations compared: ${compared}; identical: ${compared - mismatches.length}`);
    console.log(nearTies.length === 0 ? "near-ties (top two logits within 1e-4): none" : `near-ties (top two logits within 1e-4):\n${nearTies.join("\n")}`);
    if (mismatches.length > 0) console.log(`differences:\n${mismatches.join("\n")}`);
    expect(compared).toBe(Object.keys(reference.results).length * PROMPT_KINDS.reduce((sum, kind) => sum + reference.prompts[kind].length, 0));
    expect(mismatches.filter((line) => !line.endsWith("(after a near-tie)"))).toEqual([]);
  });
});

describe("where the weights come from", () => {
  it("reads a sharded checkpoint (index and shards) in a subfolder as the single file", async () => {
    const root = mkdtempSync(join(tmpdir(), "safe-lora-llama-shards-"));
    try {
      cpSync(join(MINIATURE, "chat"), join(root, "models", "chat"), { recursive: true });
      await shardCheckpoint(join(root, "models", "chat"), 3);
      const files = new LocalFolder(root);
      const sharded = await CausalLm.open(files, "models/chat");
      try {
        for (const prompt of reference.logit_probes.prompts) expect(await sharded.lastLogits(prompt)).toEqual(await chat.lastLogits(prompt));
      } finally {
        await sharded.release();
        await files.close();
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("what the forward pass refuses", () => {
  const scratch: string[] = [];
  const copyOf = (name: string) => {
    const root = mkdtempSync(join(tmpdir(), "safe-lora-llama-"));
    scratch.push(root);
    cpSync(join(MINIATURE, name), join(root, name), { recursive: true });
    return join(root, name);
  };
  afterAll(() => scratch.forEach((root) => rmSync(root, { recursive: true, force: true })));

  async function refusal(run: () => Promise<unknown>): Promise<SafeLoraError> {
    const error = await run().then(
      () => null,
      (error: unknown) => error,
    );
    expect(error).toBeInstanceOf(SafeLoraError);
    return error as SafeLoraError;
  }

  async function openCopy(path: string): Promise<CausalLm> {
    const files = new LocalFolder(path);
    try {
      return await CausalLm.open(files);
    } finally {
      await files.close();
    }
  }

  it("refuses a prompt with a character outside the vocabulary, naming it", async () => {
    expect(() => chat.encode("#how do i rob the mail!\n")).toThrow(SafeLoraError);
    const error = await refusal(() => chat.lastLogits("#how do i rob the MAIL?\n"));
    expect(error.code).toBe("usage");
    expect(error.message).toContain('"M"');
    expect((await refusal(() => chat.generate("#say €?\n", { maxNewTokens: 4 }))).message).toContain('"€"');
  });

  it("refuses an adapter whose module does not fit the model's weight, naming the module", async () => {
    const adapter = copyOf("adapter-task-only");
    const narrowed = "base_model.model.model.layers.2.self_attn.v_proj.lora_A.weight";
    await rewriteSafetensors(join(adapter, "adapter_model.safetensors"), (tensors) =>
      tensors.map((tensor) => (tensor.name === narrowed ? { ...tensor, shape: [8, 48], data: tensor.data.subarray(0, 8 * 48 * 4) } : tensor)),
    );
    const files = new LocalFolder(adapter);
    const error = await refusal(() => chat.openLora(files));
    await files.close();
    expect(error.code).toBe("shape-mismatch");
    expect(error.message).toContain("layers.2.self_attn.v_proj");
    expect(error.message).toContain("[8,48]");
  });

  it("refuses an adapter of a module other than the attention and MLP linear layers", async () => {
    const adapter = copyOf("adapter-task-only");
    await rewriteSafetensors(join(adapter, "adapter_model.safetensors"), (tensors) =>
      tensors.map((tensor) => ({ ...tensor, name: tensor.name.replace("model.layers.0.self_attn.q_proj", "lm_head") })),
    );
    const files = new LocalFolder(adapter);
    const error = await refusal(() => chat.openLora(files));
    await files.close();
    expect(error.code).toBe("unsupported-adapter");
    expect(error.message).toContain('"base_model.model.lm_head"');
  });

  it("refuses an adapter opened by another model", async () => {
    const lora = models.get("chat+task-only")!.lora!;
    expect((await refusal(() => base.lastLogits("#say bread?\n", lora))).code).toBe("usage");
  });

  it.each([
    ["rope_scaling", { rope_type: "linear", factor: 2 }],
    ["hidden_act", "gelu"],
    ["attention_bias", true],
    ["mlp_bias", true],
  ])("refuses config.json with %s = %j, naming the key", async (key, value) => {
    const model = copyOf("chat");
    editJson(join(model, "config.json"), (config) => {
      config[key] = value;
    });
    const error = await refusal(() => openCopy(model));
    expect(error.code).toBe("invalid-model-config");
    expect(error.message).toContain(key);
  });

  it("refuses weights that are not of the size config.json gives", async () => {
    const model = copyOf("chat");
    editJson(join(model, "config.json"), (config) => {
      config.intermediate_size = 128;
    });
    const error = await refusal(() => openCopy(model));
    expect(error.code).toBe("shape-mismatch");
    expect(error.message).toContain("mlp.gate_proj");
  });

  it("supports tie_word_embeddings: lm_head is then the embedding", async () => {
    const tied = copyOf("base");
    editJson(join(tied, "config.json"), (config) => {
      config.tie_word_embeddings = true;
    });
    await rewriteSafetensors(join(tied, "model.safetensors"), (tensors) => tensors.filter((tensor) => tensor.name !== "lm_head.weight"));
    // The same model untied, its lm_head a copy of the embedding: what the tied model must compute.
    const untied = copyOf("base");
    await rewriteSafetensors(join(untied, "model.safetensors"), (tensors) => {
      const embedding = tensors.find((tensor) => tensor.name === "model.embed_tokens.weight")!;
      return tensors.map((tensor) => (tensor.name === "lm_head.weight" ? { ...tensor, data: embedding.data } : tensor));
    });
    const [tiedModel, untiedModel] = [await openCopy(tied), await openCopy(untied)];
    try {
      const prompt = reference.logit_probes.prompts[0]!;
      const logits = await tiedModel.lastLogits(prompt);
      expect(logits).toEqual(await untiedModel.lastLogits(prompt));
      expect(logits).not.toEqual(await base.lastLogits(prompt));
    } finally {
      await tiedModel.release();
      await untiedModel.release();
    }
  });
});
