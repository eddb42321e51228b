import { describe, expect, it } from "vitest";
import { adapterFileKeys, findAdapterFolders } from "../../src/bot/adapters.js";
import { RepoConfig } from "../../src/config/bot-config.js";
import { MemoryForge, type MemoryFile } from "../helpers/memory-forge.js";
import { LORA_CONFIG } from "./bot-test.js";

const repoWith = async (files: Record<string, MemoryFile>) => {
  const forge = new MemoryForge();
  const sha = forge.createRepo({ repo: "acme/lora", files });
  return { forge, files: await forge.open({ repo: "acme/lora", revision: sha }) };
};
const folders = async (files: Record<string, MemoryFile>, config: Partial<RepoConfig> = {}) =>
  (await findAdapterFolders((await repoWith(files)).files, RepoConfig.parse(config))).map((adapter) => adapter.folder);

describe("findAdapterFolders", () => {
  it("finds LoRA adapters at the root and in folders, in the order of their config files' paths", async () => {
    expect(await folders({ "b/adapter_config.json": LORA_CONFIG, "adapter_config.json": LORA_CONFIG, "a/x/adapter_config.json": LORA_CONFIG })).toEqual(["a/x", ".", "b"]);
  });

  it("leaves out the bot's variants, trainer checkpoints and other PEFT methods", async () => {
    expect(
      await folders({
        "safe-lora/adapter_config.json": LORA_CONFIG,
        "a/safe-lora/adapter_config.json": LORA_CONFIG,
        "checkpoint-100/adapter_config.json": LORA_CONFIG,
        "ia3/adapter_config.json": JSON.stringify({ peft_type: "IA3" }),
        "a/adapter_config.json": LORA_CONFIG,
      }),
    ).toEqual(["a"]);
  });

  it("takes checkpoints when configured, and follows include and exclude", async () => {
    const files = { "checkpoint-100/adapter_config.json": LORA_CONFIG, "runs/x/adapter_config.json": LORA_CONFIG, "adapter_config.json": LORA_CONFIG };
    expect(await folders(files, { checkpoints: true })).toEqual([".", "checkpoint-100", "runs/x"]);
    expect(await folders(files, { include: ["runs/**"] })).toEqual(["runs/x"]);
    expect(await folders(files, { exclude: ["runs/**"] })).toEqual(["."]);
  });

  it("lets the patch job report an unreadable adapter_config.json rather than hide it", async () => {
    expect(await folders({ "adapter_config.json": "{ not json" })).toEqual(["."]);
  });

  it("never takes a folder that would leave the repo, whatever the forge lists", async () => {
    expect(await folders({ "../elsewhere/adapter_config.json": LORA_CONFIG, "a/adapter_config.json": LORA_CONFIG })).toEqual(["a"]);
  });
});

describe("adapterFileKeys", () => {
  it("keys an adapter by its files' content, so it changes exactly when the adapter does", async () => {
    const { forge, files } = await repoWith({ "a/adapter_config.json": LORA_CONFIG, "a/adapter_model.safetensors": "weights", "a/README.md": "card" });
    const before = await adapterFileKeys(files, "a");
    expect(Object.keys(before.files)).toEqual(["a/adapter_config.json", "a/adapter_model.safetensors"]);
    const readme = forge.commitFiles({ repo: "acme/lora", files: { "a/README.md": "a new card" } });
    expect((await adapterFileKeys(await forge.open({ repo: "acme/lora", revision: readme }), "a")).filesKey).toBe(before.filesKey);
    const weights = forge.commitFiles({ repo: "acme/lora", files: { "a/adapter_model.safetensors": "other weights" } });
    expect((await adapterFileKeys(await forge.open({ repo: "acme/lora", revision: weights }), "a")).filesKey).not.toBe(before.filesKey);
  });

  it("finds nothing in a folder without an adapter", async () => {
    const { files } = await repoWith({ "README.md": "x" });
    expect(await adapterFileKeys(files, ".")).toEqual({ files: {}, filesKey: "" });
  });
});
