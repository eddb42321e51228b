import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import { Checkpoint } from "../../src/safetensors/checkpoint.js";
import { LocalFolder } from "../../src/storage/local-folder.js";
import { MAX_TEXT_BYTES } from "../../src/storage/repo-files.js";
import { runCli } from "../helpers/cli.js";
import { goldenPath } from "../helpers/golden.js";

let root: string;
let model: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "safe-lora-local-"));
  model = join(root, "model");
  writeFileSync(join(root, "outside.txt"), "SECRET BYTES OUTSIDE THE MODEL FOLDER");
  mkdirSync(model);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

async function failure(run: () => Promise<unknown>): Promise<SafeLoraError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof SafeLoraError) return error;
    throw error;
  }
  throw new Error("expected a refusal");
}

describe("LocalFolder: paths stay inside the folder", () => {
  it.each(["../../../../../../etc/passwd", "../outside.txt", "/etc/passwd"])("a shard index naming %j is refused before anything is opened", async (shard) => {
    writeFileSync(join(model, "model.safetensors.index.json"), JSON.stringify({ weight_map: { "model.embed_tokens.weight": shard } }));
    const folder = new LocalFolder(model);
    const error = await failure(async () => {
      const checkpoint = await Checkpoint.open(folder);
      await checkpoint.info("model.embed_tokens.weight");
    });
    expect(error.code).toBe("unsafe-path");
    expect(error.message).toMatch(/names a shard .* that is not a file beside it/);
    expect(error.message).not.toMatch(/root:|SECRET/);
    // Only the index itself was read.
    expect(folder.bytesRead).toBe(readFileSync(join(model, "model.safetensors.index.json")).byteLength);
  });

  it.each(["../outside.txt", "a/../../outside.txt", "/etc/passwd", "a\\..\\b", ""])("refuses to read or open %j", async (path) => {
    const folder = new LocalFolder(model);
    expect((await failure(() => folder.readText(path))).code).toBe("unsafe-path");
    expect((await failure(() => folder.openBytes(path))).code).toBe("unsafe-path");
    expect((await failure(() => folder.exists(path))).code).toBe("unsafe-path");
  });
});

describe("--subfolder", () => {
  it("refuses a subfolder that leaves the adapter's folder, before anything is opened", async () => {
    // A real adapter beside the folder named by --adapter: `--subfolder ../adapter` would reach it.
    cpSync(goldenPath("llama-gqa-qv", "adapter"), join(root, "adapter"), { recursive: true });
    const result = await runCli([
      "patch", "--adapter", model, "--subfolder", "../adapter",
      "--base", goldenPath("llama-gqa-qv", "base"), "--aligned", goldenPath("llama-gqa-qv", "chat"), "--out", join(root, "out"), "--json",
    ]);
    expect(result.stderr.trim()).toBe('safe-lora: --subfolder "../adapter" is not a path inside the repo (it has a ".." segment); use a relative path such as dir/name');
    expect(result.code).toBe(3);
  });
});

describe("LocalFolder: text files are capped", () => {
  it("refuses a text file over the cap before reading it, naming the file and the cap", async () => {
    writeFileSync(join(model, "config.json"), Buffer.alloc(MAX_TEXT_BYTES + 1, 0x20));
    const folder = new LocalFolder(model);
    const error = await failure(() => folder.readText("config.json"));
    expect(error.code).toBe("limit-exceeded");
    expect(error.message).toContain(join(model, "config.json"));
    expect(error.message).toContain(`${MAX_TEXT_BYTES} bytes`);
    expect(folder.bytesRead).toBe(0);
    // A caller may allow more for files that are legitimately larger (shard indexes).
    expect((await folder.readText("config.json", { maxBytes: MAX_TEXT_BYTES + 1 })).length).toBe(MAX_TEXT_BYTES + 1);
  });
});
