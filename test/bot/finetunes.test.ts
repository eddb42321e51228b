import { describe, expect, it } from "vitest";
import { findFinetuneFolders } from "../../src/bot/finetunes.js";
import { RepoConfig } from "../../src/config/bot-config.js";
import { MAX_TEXT_BYTES } from "../../src/storage/repo-files.js";
import { MemoryForge, type MemoryFile } from "../helpers/memory-forge.js";
import { LORA_CONFIG } from "./bot-test.js";

const CONFIG = JSON.stringify({ model_type: "llama", hidden_size: 4096, intermediate_size: 14336 });
const CARD = "---\nbase_model: meta-llama/Llama-2-7b-chat-hf\n---\n# A fine-tune\n";
const WEIGHTS = new Uint8Array(8);
/** A fine-tune's files in `folder`: config, card, weights. */
const finetune = (folder: string, overrides: Record<string, MemoryFile | null> = {}) => {
  const at = (name: string) => (folder === "." ? name : `${folder}/${name}`);
  const files: Record<string, MemoryFile | null> = { [at("config.json")]: CONFIG, [at("README.md")]: CARD, [at("model.safetensors")]: WEIGHTS, ...overrides };
  return Object.fromEntries(Object.entries(files).filter((entry): entry is [string, MemoryFile] => entry[1] !== null));
};

async function found(files: Record<string, MemoryFile>, config: Partial<RepoConfig> = {}) {
  const forge = new MemoryForge();
  const sha = forge.createRepo({ repo: "acme/ft", files });
  return findFinetuneFolders(await forge.open({ repo: "acme/ft", revision: sha }), RepoConfig.parse(config));
}

describe("findFinetuneFolders", () => {
  it("finds a fine-tune with config.json, weights and a card naming base_model, and reads the largest module from config.json", async () => {
    const [only, ...rest] = await found(finetune("."));
    expect(rest).toEqual([]);
    expect(only).toMatchObject({ folder: ".", largestModuleElements: 4096 * 14336, files: { "config.json": expect.any(String), "model.safetensors": expect.any(String) } });
    // Shards and their index are a fine-tune's weights too.
    expect((await found(finetune("ft", { "ft/model.safetensors": null, "ft/model-00001-of-00002.safetensors": WEIGHTS, "ft/model.safetensors.index.json": "{}" })))[0]!.folder).toBe("ft");
  });

  it("takes nothing a repo's files only pretend: no card or no base_model, no weights, an adapter, the bot's own variant, a path out of the repo", async () => {
    expect(
      await found({
        ...finetune("no-card", { "no-card/README.md": null }),
        ...finetune("no-base", { "no-base/README.md": "---\nlicense: mit\n---\n" }),
        ...finetune("no-weights", { "no-weights/model.safetensors": null, "no-weights/pytorch_model.bin": WEIGHTS }),
        ...finetune("adapter", { "adapter/adapter_config.json": LORA_CONFIG }),
        ...finetune("safe-lora"),
        ...finetune("../outside"),
        ...finetune("checkpoint-100"),
      }),
    ).toEqual([]);
  });

  it("skips a config.json that is not JSON, not an object of sizes, or over the text cap, without reading past the cap", async () => {
    const huge = `{"hidden_size": 1, "pad": "${"x".repeat(MAX_TEXT_BYTES)}"}`;
    expect(
      await found({
        ...finetune("garbled", { "garbled/config.json": "{ not json" }),
        ...finetune("wrong", { "wrong/config.json": JSON.stringify({ hidden_size: "4096" }) }),
        ...finetune("huge", { "huge/config.json": huge }),
      }),
    ).toEqual([]);
    // Without sizes it is still a fine-tune; where it runs is then the job's CPU guard's to decide.
    const [unsized] = await found(finetune(".", { "config.json": JSON.stringify({ model_type: "llama" }) }));
    expect(unsized!.largestModuleElements).toBeNull();
  });
});
