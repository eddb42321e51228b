import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { openInputs } from "../../src/pipeline/open-inputs.js";
import { patchAdapter } from "../../src/pipeline/patch-adapter.js";
import { AlignmentCache, type AlignmentKey } from "../../src/projection/alignment-cache.js";
import { ProjectionThread } from "../../src/projection/projection-thread.js";
import type { Subspace } from "../../src/projection/subspace-operator.js";
import { goldenPath } from "../helpers/golden.js";
import { goldenHub, type GoldenHub } from "../helpers/hub-fixtures.js";
import { readAllTensors } from "../helpers/tensors.js";

const MODULE_COUNT = 8;
const SUBSPACE_4 = { kind: "subspace", rank: 4 } as const;

let fixture: GoldenHub;
beforeAll(async () => {
  fixture = await goldenHub("llama-gqa-qv");
});
afterAll(async () => {
  await ProjectionThread.stop();
  await fixture.close();
});
// Each run in these tests starts as a restarted worker does: a fresh projection thread, nothing warm.
beforeEach(() => ProjectionThread.stop());

/** One patchAdapter run of the fixture's adapter under subspace:4, projecting every module (threshold 1). */
async function patch(cache: AlignmentCache, warmBytes: number | null = null) {
  const inputs = await openInputs({ adapter: fixture.ids.adapter, access: { hubUrl: fixture.hub.url, accessToken: fixture.user.token }, allowModelTree: true });
  try {
    const patched = await patchAdapter({
      ...inputs,
      selection: { mode: "threshold", value: 1 },
      operator: SUBSPACE_4,
      executionProvider: "cpu",
      cache,
      warmPairs: warmBytes === null ? null : { maxBytes: warmBytes },
    });
    try {
      return { report: patched.report, weights: Buffer.from(await patched.weights.arrayBuffer()) };
    } finally {
      await patched.release();
    }
  } finally {
    await inputs.close();
  }
}

const subspaceEntries = (dir: string) =>
  readdirSync(join(dir, "v1", "subspace"), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));

/** lora_B of every module as the variant wrote it. */
async function loraBs(weights: Buffer): Promise<Map<string, Float32Array>> {
  const path = join(mkdtempSync(join(fixture.work, "variant-")), "adapter_model.safetensors");
  writeFileSync(path, weights);
  const { tensors } = await readAllTensors(path);
  return new Map([...tensors].filter(([name]) => name.endsWith("lora_B.weight")).map(([name, tensor]) => [name, tensor.values()]));
}

describe("the subspace operator's U_k in the disk alignment cache", () => {
  it("a restarted worker takes every module's subspace from the disk: the same variant, byte for byte, no SVD", async () => {
    const dir = mkdtempSync(join(fixture.work, "cache-"));
    const first = new AlignmentCache(dir, 1e9);
    const cold = await patch(first);
    expect(first.subspaceLookups).toEqual({ hits: 0, misses: MODULE_COUNT });
    expect(subspaceEntries(dir)).toHaveLength(MODULE_COUNT);
    expect(cold.report.modules.every((m) => m.projected && m.subspaceRank === 4)).toBe(true);

    // A new process: a new cache object on the same folder, and a new projection thread.
    const restarted = new AlignmentCache(dir, 1e9);
    const put = vi.spyOn(restarted, "putSubspace");
    const again = await patch(restarted);
    expect(restarted.subspaceLookups).toEqual({ hits: MODULE_COUNT, misses: 0 });
    expect(put).not.toHaveBeenCalled();
    expect(again.weights.equals(cold.weights)).toBe(true);
    expect(again.report.modules).toEqual(cold.report.modules);
    // V's own hits and misses are what the report counts, as before.
    expect(again.report.alignmentCache).toEqual({ hits: MODULE_COUNT, misses: 0 });
    // The report says where each module's U_k came from: computed in the cold run, the disk in the restarted one.
    expect(cold.report.operator.subspaceSources).toEqual({ warm: 0, cache: 0, computed: MODULE_COUNT });
    expect(again.report.operator.subspaceSources).toEqual({ warm: 0, cache: MODULE_COUNT, computed: 0 });
    console.log(`subspace:4, ${MODULE_COUNT} modules: run 1 subspace lookups ${JSON.stringify(first.subspaceLookups)}, restarted run ${JSON.stringify(restarted.subspaceLookups)}, variants identical`);
  });

  it("the thread projects with the subspace it was given: a planted U (the first four coordinate axes) shows in lora_B", async () => {
    const dir = mkdtempSync(join(fixture.work, "cache-"));
    const cache = new AlignmentCache(dir, 1e9);
    const put = vi.spyOn(cache, "putSubspace");
    const cold = await patch(cache);
    const [key, tag, computed] = put.mock.calls.find(([k]) => k.tensor === "model.layers.0.self_attn.q_proj.weight")! as [AlignmentKey, string, Subspace];
    // An orthonormal U that is not V's: P = diag(1, 1, 1, 1, 0, …), so P·B is B's first four rows and zeros.
    const { rows } = computed;
    const u = new Float64Array(rows * 4);
    for (let j = 0; j < 4; j++) u[j * 4 + j] = 1;
    await cache.putSubspace(key, tag, { rows, count: 4, u, sigma: computed.sigma.slice(0, 4), normSq: computed.normSq });

    const planted = await loraBs((await patch(new AlignmentCache(dir, 1e9))).weights);
    const name = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";
    const { tensors } = await readAllTensors(goldenPath("llama-gqa-qv", "adapter", "adapter_model.safetensors"));
    const b = tensors.get(name)!.values();
    const r = b.length / rows;
    const expected = b.map((value, index) => (Math.floor(index / r) < 4 ? value : 0));
    expect(Array.from(planted.get(name)!)).toEqual(Array.from(expected));
    // Every other module as in the cold run.
    const coldBs = await loraBs(cold.weights);
    for (const [other, values] of planted) if (other !== name) expect(Array.from(values)).toEqual(Array.from(coldBs.get(other)!));
  });

  it("a damaged subspace entry is a miss: computed again, the same variant, and the entry written afresh", async () => {
    const dir = mkdtempSync(join(fixture.work, "cache-"));
    const cold = await patch(new AlignmentCache(dir, 1e9));
    const [path] = subspaceEntries(dir);
    const bytes = readFileSync(path!);
    bytes[bytes.byteLength - 20]! ^= 0x10;
    writeFileSync(path!, bytes);

    const damaged = new AlignmentCache(dir, 1e9);
    const put = vi.spyOn(damaged, "putSubspace");
    const again = await patch(damaged);
    expect(damaged.subspaceLookups).toEqual({ hits: MODULE_COUNT - 1, misses: 1 });
    expect(put).toHaveBeenCalledTimes(1);
    expect(again.weights.equals(cold.weights)).toBe(true);
    expect(readFileSync(path!).equals(bytes)).toBe(false);

    const mended = new AlignmentCache(dir, 1e9);
    await patch(mended);
    expect(mended.subspaceLookups).toEqual({ hits: MODULE_COUNT, misses: 0 });
    console.log(`one flipped bit: lookups ${JSON.stringify(damaged.subspaceLookups)}, variant identical; the next run ${JSON.stringify(mended.subspaceLookups)}`);
  });

  it("with warm pairs, a warm subspace beats the disk: the disk is read once per module into the thread, then not at all", async () => {
    const dir = mkdtempSync(join(fixture.work, "cache-"));
    const cold = await patch(new AlignmentCache(dir, 1e9));
    const intoThread = new AlignmentCache(dir, 1e9);
    expect((await patch(intoThread, 64 << 20)).weights.equals(cold.weights)).toBe(true);
    expect(intoThread.subspaceLookups).toEqual({ hits: MODULE_COUNT, misses: 0 });
    // The same thread: V and its subspace are warm, so nothing is looked up on disk.
    const warm = new AlignmentCache(dir, 1e9);
    const warmRun = await patch(warm, 64 << 20);
    expect(warmRun.weights.equals(cold.weights)).toBe(true);
    expect(warm.subspaceLookups).toEqual({ hits: 0, misses: 0 });
    expect(warmRun.report.operator.subspaceSources).toEqual({ warm: MODULE_COUNT, cache: 0, computed: 0 });
  });
});
