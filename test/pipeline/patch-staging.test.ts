import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import { patchAdapter, type PatchRequest } from "../../src/pipeline/patch-adapter.js";
import { variantFiles, writeVariant } from "../../src/pipeline/variant-files.js";
import { decodeToFloat32, encodeFromFloat32, type FloatDtype } from "../../src/safetensors/dtype.js";
import { serializeSafetensors } from "../../src/safetensors/write.js";
import { LocalFolder } from "../../src/storage/local-folder.js";
import { copyGolden, rewriteSafetensors, type CaseCopy } from "../helpers/fixture-copy.js";
import { readForRewrite } from "../helpers/tensors.js";

let fixture: CaseCopy;
let stagingParent: string;
beforeEach(() => {
  fixture = copyGolden("llama-gqa-qv");
  stagingParent = join(fixture.root, "staging");
  mkdirSync(stagingParent);
});
afterEach(() => fixture.remove());

const request = (extra: Partial<PatchRequest> = {}): PatchRequest => ({
  adapter: { files: new LocalFolder(fixture.adapter), revision: null },
  base: { files: new LocalFolder(fixture.base), revision: null },
  aligned: { files: new LocalFolder(fixture.chat), revision: null },
  selection: { mode: "threshold", value: 0.33 },
  executionProvider: "cpu",
  stagingParent,
  ...extra,
});

const staged = () => readdirSync(stagingParent).flatMap((dir) => readdirSync(join(stagingParent, dir)).map((file) => `${dir.replace(/-[0-9a-f]{8}$/, "")}/${file}`));

describe("a patch's staging folder", () => {
  it("holds the variant's weights until they are released, written tensor by tensor as the input laid them out", async () => {
    const patched = await patchAdapter(request());
    expect(staged()).toEqual([expect.stringMatching(/^safe-lora-staging-[0-9a-f]{8}-\d+\/adapter_model\.safetensors$/)]);
    // The same bytes as the whole file built in memory from the written variant's tensors.
    const out = join(fixture.root, "out");
    await writeVariant(out, variantFiles(patched, { alignedHubId: null, license: null, command: "test" }));
    const written = readFileSync(join(out, "adapter_model.safetensors"));
    const { tensors } = await readForRewrite(join(out, "adapter_model.safetensors"));
    expect(Buffer.concat(serializeSafetensors(patched.metadata, tensors)).equals(written)).toBe(true);
    expect(Buffer.from(await patched.weights.arrayBuffer()).equals(written)).toBe(true);
    await patched.release();
    expect(readdirSync(stagingParent)).toEqual([]);
    await patched.release();
  });

  it("is removed when a module fails in the projection thread, which fails with the same SafeLoraError", async () => {
    await rewriteSafetensors(join(fixture.chat, "model.safetensors"), (tensors) =>
      tensors.map((t) => {
        if (t.name !== "model.layers.2.self_attn.q_proj.weight") return t;
        const values = decodeToFloat32(t.data, t.dtype);
        values[0] = Number.NaN;
        return { ...t, data: encodeFromFloat32(values, t.dtype as FloatDtype) };
      }),
    );
    const error = await patchAdapter(request()).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(SafeLoraError);
    expect((error as SafeLoraError).code).toBe("non-finite");
    expect((error as SafeLoraError).message).toMatch(/^module "base_model\.model\.model\.layers\.2\.self_attn\.q_proj": its weights or LoRA factors contain NaN/);
    expect(readdirSync(stagingParent)).toEqual([]);
  });

  it("is removed when the run is stopped between modules", async () => {
    const controller = new AbortController();
    const done: number[] = [];
    const error = await patchAdapter(
      request({
        signal: controller.signal,
        onProgress: (progress) => {
          done.push(progress.done);
          if (progress.done === 2) controller.abort("the job's time limit");
        },
      }),
    ).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(SafeLoraError);
    expect((error as SafeLoraError).message).toBe("stopped after 2 of 8 modules: the job's time limit");
    expect(done).toEqual([1, 2]);
    expect(readdirSync(stagingParent)).toEqual([]);
  });
});
