import { copyFileSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { folderFiles, seedRepo } from "../../src/local-hub/seed.js";
import { openInputs } from "../../src/pipeline/open-inputs.js";
import { patchAdapter } from "../../src/pipeline/patch-adapter.js";
import { AlignmentCache } from "../../src/projection/alignment-cache.js";
import { ProjectionThread } from "../../src/projection/projection-thread.js";
import { SafeLoraReport } from "../../src/report/schema.js";
import type { ByteSource } from "../../src/storage/byte-source.js";
import type { RepoFiles } from "../../src/storage/repo-files.js";
import { rewriteSafetensors } from "../helpers/fixture-copy.js";
import { goldenPath } from "../helpers/golden.js";
import { goldenHub, type GoldenHub } from "../helpers/hub-fixtures.js";
import { eightModules } from "../report/report-fixture.js";

/** One positioned read of a weight file. */
interface Read {
  readonly path: string;
  readonly offset: number;
  readonly length: number;
}

/** `files`, with every ranged read recorded: the instrumented source the warm runs are measured through. */
function recorded(files: RepoFiles, reads: Read[]): RepoFiles {
  const source = (path: string, inner: ByteSource): ByteSource => ({
    get description() {
      return inner.description;
    },
    get size() {
      return inner.size;
    },
    get bytesRead() {
      return inner.bytesRead;
    },
    read: (offset, length, into) => {
      reads.push({ path, offset, length });
      return inner.read(offset, length, into);
    },
    close: () => inner.close(),
  });
  return {
    get description() {
      return files.description;
    },
    get bytesRead() {
      return files.bytesRead;
    },
    exists: (path) => files.exists(path),
    readText: (path, options) => files.readText(path, options),
    contentKey: (path) => files.contentKey(path),
    openBytes: async (path) => source(path, await files.openBytes(path)),
    close: () => files.close(),
  };
}

/** Reads past a safetensors file's length prefix (offset 0) and JSON header (offset 8): tensor data. */
const tensorReads = (reads: readonly Read[]) => reads.filter((read) => read.offset > 8);

const SECOND = "acme/second-lora";
const MODULE_COUNT = 8;

let fixture: GoldenHub;

beforeAll(async () => {
  fixture = await goldenHub("llama-gqa-qv");
  // A second adapter on the same pair, with other LoRA factors.
  await seedRepo(fixture.hub, SECOND, await folderFiles(goldenPath("llama-gqa-qv", "expected-threshold-0.5")));
});
afterAll(async () => {
  await ProjectionThread.stop();
  await fixture.close();
});
// Each test starts with a fresh projection thread: nothing warm.
beforeEach(() => ProjectionThread.stop());

async function patch(adapter: string, options: { warmBytes?: number; cache?: AlignmentCache; executionProvider?: "cpu" | "auto" } = {}) {
  const inputs = await openInputs({ adapter, access: { hubUrl: fixture.hub.url, accessToken: fixture.user.token }, allowModelTree: true });
  const reads: Read[] = [];
  try {
    const patched = await patchAdapter({
      ...inputs,
      base: { ...inputs.base, files: recorded(inputs.base.files, reads) },
      aligned: { ...inputs.aligned, files: recorded(inputs.aligned.files, reads) },
      selection: { mode: "threshold", value: 0.5 },
      executionProvider: options.executionProvider ?? "cpu",
      cache: options.cache ?? null,
      warmPairs: options.warmBytes === undefined ? null : { maxBytes: options.warmBytes },
    });
    try {
      return { report: patched.report, sources: patched.alignmentSources, weights: Buffer.from(await patched.weights.arrayBuffer()), reads };
    } finally {
      await patched.release();
    }
  } finally {
    await inputs.close();
  }
}

describe("warm pairs: a second adapter on a pair used before, in the same process", () => {
  it("reads no base or aligned tensor byte and no V from the disk cache, and writes what a cold run writes", async () => {
    const cache = new AlignmentCache(mkdtempSync(join(fixture.work, "cache-")), 1e9);
    const first = await patch(fixture.ids.adapter, { warmBytes: 64 << 20, cache });
    expect(first.sources).toEqual({ warm: 0, cache: 0, weights: MODULE_COUNT, keptWarm: MODULE_COUNT });
    expect(tensorReads(first.reads)).toHaveLength(2 * MODULE_COUNT);
    expect(await ProjectionThread.shared().warmStatus()).toMatchObject({ entries: MODULE_COUNT, maxBytes: 64 << 20 });

    const getAlignment = vi.spyOn(cache, "getAlignment");
    const warm = await patch(SECOND, { warmBytes: 64 << 20, cache });
    expect(warm.sources).toEqual({ warm: MODULE_COUNT, cache: 0, weights: 0, keptWarm: 0 });
    expect(tensorReads(warm.reads)).toEqual([]);
    expect(getAlignment).not.toHaveBeenCalled();
    expect(warm.report.alignmentCache).toEqual({ hits: MODULE_COUNT, misses: 0 });

    // The same adapter on a cold pair (a fresh thread, no disk cache): the same bytes and figures.
    await ProjectionThread.stop();
    const cold = await patch(SECOND, { warmBytes: 64 << 20 });
    expect(cold.sources.weights).toBe(MODULE_COUNT);
    expect(tensorReads(cold.reads)).toHaveLength(2 * MODULE_COUNT);
    expect(warm.weights.equals(cold.weights)).toBe(true);
    expect(warm.report.modules).toEqual(cold.report.modules);
    // And what a run without any cache tier writes.
    await ProjectionThread.stop();
    const plain = await patch(SECOND);
    expect(plain.report.alignmentCache).toBeUndefined();
    expect(warm.weights.equals(plain.weights)).toBe(true);
  });

  it("takes V from the disk cache once into a fresh process's thread, then keeps it warm", async () => {
    const cache = new AlignmentCache(mkdtempSync(join(fixture.work, "cache-")), 1e9);
    await patch(fixture.ids.adapter, { cache });
    await ProjectionThread.stop();
    const fromDisk = await patch(SECOND, { warmBytes: 64 << 20, cache });
    expect(fromDisk.sources).toEqual({ warm: 0, cache: MODULE_COUNT, weights: 0, keptWarm: MODULE_COUNT });
    const getAlignment = vi.spyOn(cache, "getAlignment");
    const warm = await patch(fixture.ids.adapter, { warmBytes: 64 << 20, cache });
    expect(warm.sources.warm).toBe(MODULE_COUNT);
    expect(getAlignment).not.toHaveBeenCalled();
  });

  it("stays within its budget, least recently used modules out, and a run keeps what it planned as warm", async () => {
    // Three q_proj modules' V (64 × 64 fp32) of the pair's eight modules (four q_proj, four 32 × 64 v_proj).
    const budget = 3 * 64 * 64 * 4;
    await patch(fixture.ids.adapter, { warmBytes: budget });
    const status = await ProjectionThread.shared().warmStatus();
    expect(status.bytes).toBeLessThanOrEqual(budget);
    expect(status.entries).toBeGreaterThan(0);
    expect(status.entries).toBeLessThan(MODULE_COUNT);

    const second = await patch(SECOND, { warmBytes: budget });
    // What was held is used, and not pushed out by the others while the run needs it.
    expect(second.sources.warm).toBe(status.entries);
    expect(second.sources.weights).toBe(MODULE_COUNT - status.entries);
    expect(tensorReads(second.reads)).toHaveLength(2 * (MODULE_COUNT - status.entries));
    expect((await ProjectionThread.shared().warmStatus()).bytes).toBeLessThanOrEqual(budget);

    // A smaller budget, as a later run brings it, evicts down to it.
    await patch(SECOND, { warmBytes: 64 * 64 * 4 });
    expect(await ProjectionThread.shared().warmStatus()).toMatchObject({ entries: 1, maxBytes: 64 * 64 * 4 });
  });

  it("is keyed by the pair's content: a changed aligned model is not served from the warm V of the old one", async () => {
    const first = await patch(SECOND, { warmBytes: 64 << 20 });
    copyFileSync(goldenPath("llama-gqa-qv", "chat", "model.safetensors"), join(fixture.work, "chat-changed.safetensors"));
    await rewriteSafetensors(join(fixture.work, "chat-changed.safetensors"), (tensors) =>
      tensors.map((t) => {
        if (t.name !== "model.layers.0.self_attn.q_proj.weight") return t;
        const values = new Float32Array(t.data.slice().buffer);
        for (let i = 0; i < values.length; i += 3) values[i] = values[i]! * 1.01;
        return { ...t, data: new Uint8Array(values.buffer) };
      }),
    );
    await seedRepo(fixture.hub, fixture.ids.chat, [{ path: "model.safetensors", diskPath: join(fixture.work, "chat-changed.safetensors") }]);
    const after = await patch(SECOND, { warmBytes: 64 << 20 });
    expect(after.sources).toMatchObject({ warm: 0, weights: MODULE_COUNT });
    const cosine = (run: typeof first, name: string) => run.report.modules.find((m) => m.name.includes(name))!.cosineExact;
    expect(cosine(after, "layers.0.self_attn.q_proj")).not.toBe(cosine(first, "layers.0.self_attn.q_proj"));
    expect(cosine(after, "layers.1.self_attn.q_proj")).toBe(cosine(first, "layers.1.self_attn.q_proj"));
  });
});

describe("the execution provider a run records", () => {
  it("auto: the report names the provider that ran, what was asked, and why better ones were passed over", async () => {
    const { report } = await patch(fixture.ids.adapter, { executionProvider: "auto" });
    const opened = await ProjectionThread.shared().open("auto");
    expect(report.operator).toMatchObject({ executionProvider: opened.provider, requestedProvider: "auto" });
    expect(report.operator.providerFallbacks ?? []).toEqual(opened.fallbacks);
    expect(SafeLoraReport.parse(JSON.parse(JSON.stringify(report))).operator).toEqual(report.operator);
  });

  it("a report written before the provider was recorded (no requestedProvider, no providerFallbacks) still parses", () => {
    const old = eightModules();
    expect(Object.keys(old.operator).sort()).toEqual(["executionProvider", "formula"]);
    expect(SafeLoraReport.parse(old).operator).toEqual(old.operator);
  });
});
