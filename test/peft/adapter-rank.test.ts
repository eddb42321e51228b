import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import { patchAdapter, type PatchRequest } from "../../src/pipeline/patch-adapter.js";
import { ProjectionThread } from "../../src/projection/projection-thread.js";
import { LocalFolder } from "../../src/storage/local-folder.js";
import { copyGolden, rewriteSafetensors, type CaseCopy } from "../helpers/fixture-copy.js";

let fixture: CaseCopy;
beforeEach(() => {
  fixture = copyGolden("llama-gqa-qv");
});
afterEach(() => {
  vi.restoreAllMocks();
  fixture.remove();
});

/** Gives every LoRA module of the adapter rank `rank` (lora_A [r, d_in], lora_B [d_out, r], zeros). */
async function setRank(rank: number): Promise<void> {
  await rewriteSafetensors(join(fixture.adapter, "adapter_model.safetensors"), (tensors) =>
    tensors.map((tensor) => {
      const [rows, cols] = tensor.shape as [number, number];
      const shape = tensor.name.includes(".lora_A.") ? [rank, cols] : [rows, rank];
      return { ...tensor, shape, data: new Uint8Array(shape[0]! * shape[1]! * 4) };
    }),
  );
}

const request = (limits?: PatchRequest["limits"]): PatchRequest => ({
  adapter: { files: new LocalFolder(fixture.adapter), revision: null },
  base: { files: new LocalFolder(fixture.base), revision: null },
  aligned: { files: new LocalFolder(fixture.chat), revision: null },
  selection: { mode: "threshold", value: 0.5 },
  executionProvider: "cpu",
  ...(limits ? { limits } : {}),
});

async function refusal(patch: PatchRequest): Promise<SafeLoraError> {
  // Refused from the headers: no projection session (the memory that grows with r²) is ever created.
  const created = vi.spyOn(ProjectionThread.prototype, "open");
  const error = await patchAdapter(patch).then(
    () => new Error("expected a refusal"),
    (thrown: unknown) => thrown,
  );
  expect(created).not.toHaveBeenCalled();
  if (!(error instanceof SafeLoraError)) throw error;
  return error;
}

describe("LoRA rank", () => {
  it("refuses a rank above min(d_out, d_in) before allocating anything", async () => {
    await setRank(40); // v_proj is [32, 64]: rank 40 > 32
    const error = await refusal(request());
    expect(error.code).toBe("unsupported-adapter");
    expect(error.message).toMatch(/module ".*v_proj" has LoRA rank 40, more than its weight's smaller dimension \(32 of \[32, 64\]\)/);
  });

  it("refuses a rank above the configured cap (limits.maxRank) before allocating anything", async () => {
    const error = await refusal(request({ maxRank: 4 })); // the golden adapter has r = 8
    expect(error.code).toBe("limit-exceeded");
    expect(error.message).toMatch(/has LoRA rank 8, more than the limit of 4 .*limits\.maxRank/);
  });
});
