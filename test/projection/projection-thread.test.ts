import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import type { LoraBytes, PairBytes } from "../../src/projection/projection-messages.js";
import { ProjectionSession } from "../../src/projection/projection-session.js";
import { ProjectionThread } from "../../src/projection/projection-thread.js";
import { decodeToFloat32, encodeFromFloat32, type Dtype } from "../../src/safetensors/dtype.js";
import { spawnSource } from "../helpers/cli.js";
import { cudaProviderInstalled } from "../helpers/onnxruntime.js";

const [dOut, dIn, rank] = [24, 16, 4];

function values(count: number, seed: number): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => Math.sin(seed * 1000 + i * 12.9898) * 0.05);
}

const raw = (data: Float32Array, dtype: Dtype = "F32") => ({ bytes: dtype === "BF16" ? encodeFromFloat32(data, "BF16") : encodeFromFloat32(data, "F32"), dtype });

function module(seed: number, options: { loraDtype?: Dtype; poison?: boolean } = {}): { lora: LoraBytes; pair: PairBytes } {
  const wBase = values(dOut * dIn, seed);
  const wAligned = wBase.map((v, i) => v + Math.cos(i + seed) * 0.002);
  if (options.poison) wAligned[3] = Number.NaN;
  const loraA = raw(values(rank * dIn, seed + 1), options.loraDtype);
  return {
    lora: { name: `layers.${seed}.q_proj`, dOut, dIn, rank, loraA, loraB: raw(values(dOut * rank, seed + 2)) },
    pair: { wBase: raw(wBase, "BF16"), wAligned: raw(wAligned, "BF16") },
  };
}

afterAll(() => ProjectionThread.stop());

/** Byte lengths of the distinct buffers behind every typed array and ArrayBuffer a reply holds, however deep. */
function buffersIn(value: unknown, seen = new Set<ArrayBufferLike>()): number[] {
  if (ArrayBuffer.isView(value)) seen.add(value.buffer);
  else if (value instanceof ArrayBuffer) seen.add(value);
  else if (value && typeof value === "object") for (const item of Object.values(value)) buffersIn(item, seen);
  return [...seen].map((buffer) => buffer.byteLength);
}

describe("the projection thread", () => {
  it("computes exactly what the session computes on the main thread, and hands the weights' buffers back", async () => {
    const { lora, pair } = module(1);
    const expected = await (await ProjectionSession.create("cpu")).project({
      ...lora,
      loraA: decodeToFloat32(lora.loraA.bytes, lora.loraA.dtype),
      loraB: decodeToFloat32(lora.loraB.bytes, lora.loraB.dtype),
      wBase: decodeToFloat32(pair.wBase.bytes, "BF16"),
      wAligned: decodeToFloat32(pair.wAligned.bytes, "BF16"),
    });
    const thread = ProjectionThread.shared();
    const { provider, fallbacks } = await thread.open("cpu");
    expect(provider).toBe("cpu");
    expect(fallbacks).toEqual([]);
    const sizes = [pair.wBase.bytes.byteLength, pair.wAligned.bytes.byteLength];
    const reply = await thread.project(provider, lora, pair);
    expect(reply.projection).toEqual(expected);
    expect(Buffer.from(reply.projection.projectedB.buffer).equals(Buffer.from(expected.projectedB.buffer, expected.projectedB.byteOffset, expected.projectedB.byteLength))).toBe(true);
    // Moved, not copied: the caller's views are detached, and the same buffers come back for the next reads.
    expect(pair.wBase.bytes.byteLength).toBe(0);
    expect(reply.buffers.map((buffer) => buffer.byteLength)).toEqual(sizes);
  });

  it("keeps V for the cache, and projects from a known V to the same figures", async () => {
    const thread = ProjectionThread.shared();
    const direct = await thread.project("cpu", module(2).lora, module(2).pair);
    const first = await thread.project("cpu", module(2).lora, module(2).pair, new Float32Array(dOut * dIn));
    expect(first.alignment!.v).toHaveLength(dOut * dIn);
    const v = first.alignment!.v.slice();
    const again = await thread.projectWith("cpu", module(2).lora, { ...first.alignment!, v });
    expect(v.byteLength).toBe(0);
    expect(again.projection).toEqual(first.projection);
    // Filling the cache runs the fused graph too: the same figures as a run without it.
    expect(first.projection).toEqual(direct.projection);
  });

  it("sends V to the main thread only into the buffer asked for: not when it is kept warm, nor with a projection", async () => {
    const thread = ProjectionThread.shared();
    const vBytes = dOut * dIn * 4;
    await thread.leaseWarm(1e6, []);
    const cold = await thread.project("cpu", module(9).lora, module(9).pair, null, "v-stays-9");
    expect(cold.kept).toBe(true);
    expect(buffersIn(cold).filter((bytes) => bytes === vBytes)).toEqual([]);
    const warm = await thread.projectWarm("cpu", module(9).lora, "v-stays-9");
    expect(warm.projection).toEqual(cold.projection);
    expect(buffersIn(warm).filter((bytes) => bytes === vBytes)).toEqual([]);
    // A V from the disk cache, kept warm, stays in the thread as well: nothing of it comes back.
    const cached = await thread.projectWith("cpu", module(9).lora, { ...cold.projection, v: values(dOut * dIn, 9) }, "v-stays-9b");
    expect(cached.kept).toBe(true);
    expect(buffersIn(cached).filter((bytes) => bytes === vBytes)).toEqual([]);
    // Asked for (the disk cache), V comes back once, in the caller's buffer, also when it is kept warm.
    const into = new Float32Array(dOut * dIn);
    const both = await thread.project("cpu", module(10).lora, module(10).pair, into, "v-stays-10");
    expect(buffersIn(both).filter((bytes) => bytes === vBytes)).toEqual([vBytes]);
    expect(both.alignment!.v).toHaveLength(dOut * dIn);
  });

  it("fails with the SafeLoraError the thread threw: its message, code and fix", async () => {
    const thread = ProjectionThread.shared();
    const poisoned = module(3, { poison: true });
    const error = await thread.project("cpu", poisoned.lora, poisoned.pair).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(SafeLoraError);
    expect((error as SafeLoraError).code).toBe("non-finite");
    expect((error as SafeLoraError).message).toMatch(/^module "layers\.3\.q_proj": its weights or LoRA factors contain NaN or infinite values/);
    const integer = module(4, { loraDtype: "I32" });
    await expect(thread.project("cpu", integer.lora, integer.pair)).rejects.toMatchObject({ name: "SafeLoraError", code: "unsupported-dtype" });
    // The thread goes on serving after a failed request.
    await expect(thread.project("cpu", module(5).lora, module(5).pair)).resolves.toHaveProperty("projection");
  });

  it.skipIf(cudaProviderInstalled)("refuses an execution provider that is not available, before any module", async () => {
    const error = await ProjectionThread.shared()
      .open("cuda")
      .catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(SafeLoraError);
    expect((error as SafeLoraError).code).toBe("execution-provider-unavailable");
    expect((error as SafeLoraError).message).toMatch(/execution provider "cuda" is not available.*--ep cpu/);
  });

  it("fails what is in flight when the thread stops, and starts afresh on the next request", async () => {
    const before = ProjectionThread.shared();
    await before.open("cpu");
    // Large enough (1024 × 1024, r = 512) to be still computing when the thread is stopped.
    const [d, r] = [1024, 512];
    const w = values(d * d, 6);
    const lora = { name: "large", dOut: d, dIn: d, rank: r, loraA: raw(values(r * d, 7)), loraB: raw(values(d * r, 8)) };
    const inFlight = before.project("cpu", lora, { wBase: raw(w), wAligned: raw(w.map((v) => v * 1.01)) });
    // Taken before stop(), which fails it at once: a rejection nobody awaits yet is an unhandled one.
    const failed = expect(inFlight).rejects.toThrow(/the projection thread stopped/);
    await ProjectionThread.stop();
    await failed;
    // A run that still holds the stopped thread is failed at once, not left waiting for an answer.
    await expect(before.project("cpu", module(8).lora, module(8).pair)).rejects.toThrow(/the projection thread stopped/);
    const after = ProjectionThread.shared();
    expect(after).not.toBe(before);
    await expect(after.project("cpu", module(7).lora, module(7).pair)).resolves.toHaveProperty("projection");
  });

  it("does not keep a process alive once its work is done", { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "safe-lora-thread-"));
    try {
      const script = join(dir, "open-and-return.mts");
      const source = new URL("../../src/projection/projection-thread.ts", import.meta.url).pathname;
      writeFileSync(script, `import { ProjectionThread } from ${JSON.stringify(source)};\nprocess.stdout.write((await ProjectionThread.shared().open("cpu")).provider);\n`);
      const result = await spawnSource(script, [], { cwd: dir });
      expect(result).toMatchObject({ code: 0, stdout: "cpu" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
