import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AlignmentCache } from "../../src/projection/alignment-cache.js";
import { randomizedSvd, seededGaussian, subspaceTag, SUBSPACE_SEED, type Subspace } from "../../src/projection/subspace-operator.js";
import { Checkpoint } from "../../src/safetensors/checkpoint.js";
import { LocalFolder } from "../../src/storage/local-folder.js";
import { goldenPath } from "../helpers/golden.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "safe-lora-cache-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const key = (tensor: string) => ({ baseFile: "a".repeat(64), alignedFile: "b".repeat(64), tensor });
const alignment = (size: number, value: number) => ({ v: new Float32Array(size).fill(value), wBaseNormSq: 2, wAlignedNormSq: 3 });

function entries(kind: "v" | "subspace" | "doc" = "v"): string[] {
  const root = join(dir, "v1", kind);
  return readdirSync(root, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

describe("AlignmentCache", () => {
  it("returns what was put, by content key, into a reusable buffer", async () => {
    const cache = new AlignmentCache(dir, 1e9);
    await cache.putAlignment(key("q"), [4, 8], alignment(32, 1.5));
    const buffer = new Float32Array(64);
    const hit = await cache.getAlignment(key("q"), [4, 8], buffer);
    expect(hit?.v.length).toBe(32);
    expect(Array.from(hit!.v)).toEqual(new Array(32).fill(1.5));
    expect(hit?.v.buffer).toBe(buffer.buffer);
    expect(hit).toMatchObject({ wBaseNormSq: 2, wAlignedNormSq: 3 });
    expect(await cache.getAlignment({ ...key("q"), alignedFile: "c".repeat(64) }, [4, 8])).toBeNull();
  });

  it("evicts the least recently used entries beyond its limit", async () => {
    const cache = new AlignmentCache(dir, 3 * 1300);
    for (const name of ["a", "b", "c", "d"]) await cache.putAlignment(key(name), [16, 16], alignment(256, 1)); // ~1.25 KB each
    const past = Date.now() / 1000 - 100;
    for (const path of entries()) utimesSync(path, past, past);
    await cache.getAlignment(key("a"), [16, 16]); // a hit makes "a" the most recently used
    expect(await cache.evict()).toBeGreaterThan(0);
    expect(entries()).toHaveLength(3);
    expect(await cache.getAlignment(key("a"), [16, 16])).not.toBeNull();
  });

  it("treats a damaged entry as a miss and removes it", async () => {
    const cache = new AlignmentCache(dir, 1e9);
    await cache.putAlignment(key("q"), [4, 8], alignment(32, 1));
    const [path] = entries();
    writeFileSync(path!, "torn");
    expect(await cache.getAlignment(key("q"), [4, 8])).toBeNull();
    expect(entries()).toEqual([]);
  });

  it("survives concurrent writers of the same entry: no torn file, no leftovers", async () => {
    const cache = new AlignmentCache(dir, 1e9);
    const other = new AlignmentCache(dir, 1e9);
    await Promise.all([cache.putAlignment(key("q"), [64, 64], alignment(4096, 7)), other.putAlignment(key("q"), [64, 64], alignment(4096, 7))]);
    expect(entries()).toHaveLength(1);
    expect(Array.from((await cache.getAlignment(key("q"), [64, 64]))!.v.subarray(0, 3))).toEqual([7, 7, 7]);
  });

  it("never returns a V whose bytes changed on disk: a flipped sign bit is a miss, and the entry is removed", async () => {
    const cache = new AlignmentCache(dir, 1e9);
    await cache.putAlignment(key("q"), [4, 8], alignment(32, 1.5));
    const [path] = entries();
    const bytes = readFileSync(path!);
    bytes[bytes.byteLength - 1]! ^= 0x80; // the sign bit of the last float32 (little-endian)
    writeFileSync(path!, bytes);
    expect(await cache.getAlignment(key("q"), [4, 8], new Float32Array(32))).toBeNull();
    expect(entries()).toEqual([]);
  });

  it("treats an entry of another shape than the module's as a miss, not as the module's V", async () => {
    const cache = new AlignmentCache(dir, 1e9);
    await cache.putAlignment(key("q"), [4, 8], alignment(32, 1.5));
    expect(await cache.getAlignment(key("q"), [8, 4])).toBeNull();
    expect(await cache.getAlignment(key("q"), [4, 8])).toBeNull(); // removed: the next put writes it afresh
  });
});

/** The subspace of a seeded 12 × 9 V, as the subspace operator computes it (sketch width 6). */
async function subspaceOf(): Promise<Subspace> {
  const gaussian = seededGaussian(7);
  return randomizedSvd({ rows: 12, cols: 9, data: Float64Array.from({ length: 108 }, gaussian) }, 6, SUBSPACE_SEED);
}

const TAG = subspaceTag(6);
const EXPECTED = { rows: 12, width: 6 };

describe("AlignmentCache: subspaces of V", () => {
  it("returns what was put, bit for bit, under the module's key and the subspace's tag, and counts hits and misses", async () => {
    const cache = new AlignmentCache(dir, 1e9);
    const subspace = await subspaceOf();
    expect(await cache.getSubspace(key("q"), TAG, EXPECTED)).toBeNull();
    await cache.putSubspace(key("q"), TAG, subspace);
    const hit = await cache.getSubspace(key("q"), TAG, EXPECTED);
    expect(hit).toEqual(subspace);
    // Another tag (another sketch width) or another module is another entry; the V entries are untouched.
    expect(await cache.getSubspace(key("q"), subspaceTag(5), { rows: 12, width: 5 })).toBeNull();
    expect(await cache.getSubspace(key("k"), TAG, EXPECTED)).toBeNull();
    expect(cache.subspaceLookups).toEqual({ hits: 1, misses: 3 });
    expect(entries("subspace")).toHaveLength(1);
    expect(() => entries("v")).toThrow(/ENOENT/);
  });

  it("never returns a subspace whose bytes changed on disk: a flipped byte is a miss, and the entry is removed", async () => {
    const cache = new AlignmentCache(dir, 1e9);
    await cache.putSubspace(key("q"), TAG, await subspaceOf());
    const [path] = entries("subspace");
    const bytes = readFileSync(path!);
    bytes[bytes.byteLength - 3]! ^= 0x01; // inside σ's last Float64: a value still finite and plausible
    writeFileSync(path!, bytes);
    expect(await cache.getSubspace(key("q"), TAG, EXPECTED)).toBeNull();
    expect(entries("subspace")).toEqual([]);
    // A torn entry too.
    await cache.putSubspace(key("q"), TAG, await subspaceOf());
    truncateSync(entries("subspace")[0]!, 100);
    expect(await cache.getSubspace(key("q"), TAG, EXPECTED)).toBeNull();
    expect(entries("subspace")).toEqual([]);
  });

  it("treats an entry that does not fit the module as a miss: another d_out, more directions than the sketch's width, a value that is not finite", async () => {
    const cache = new AlignmentCache(dir, 1e9);
    const subspace = await subspaceOf();
    await cache.putSubspace(key("q"), TAG, subspace);
    expect(await cache.getSubspace(key("q"), TAG, { rows: 13, width: 6 })).toBeNull();
    await cache.putSubspace(key("q"), TAG, subspace);
    expect(await cache.getSubspace(key("q"), TAG, { rows: 12, width: 5 })).toBeNull();
    // Checksummed as written, so only the value check can refuse it.
    const u = subspace.u.slice();
    u[5] = Number.NaN;
    await cache.putSubspace(key("q"), TAG, { ...subspace, u });
    expect(await cache.getSubspace(key("q"), TAG, EXPECTED)).toBeNull();
    await cache.putSubspace(key("q"), TAG, { ...subspace, sigma: subspace.sigma.slice().reverse() });
    expect(await cache.getSubspace(key("q"), TAG, EXPECTED)).toBeNull();
    expect(entries("subspace")).toEqual([]);
    expect(cache.subspaceLookups).toEqual({ hits: 0, misses: 4 });
  });

  it("counts subspace entries in the size limit and evicts them least recently used first, beside V", async () => {
    const subspace = await subspaceOf();
    const cache = new AlignmentCache(dir, 1e9);
    await cache.putAlignment(key("q"), [16, 16], alignment(256, 1));
    await cache.putSubspace(key("q"), TAG, subspace);
    const total = [...entries("v"), ...entries("subspace")].reduce((sum, path) => sum + readFileSync(path).byteLength, 0);
    const subspaceBytes = readFileSync(entries("subspace")[0]!).byteLength;
    const past = Date.now() / 1000 - 100;
    utimesSync(entries("subspace")[0]!, past, past);
    // Room for V alone: the older subspace goes.
    const tight = new AlignmentCache(dir, total - 1);
    expect(await tight.evict()).toBe(subspaceBytes);
    expect(entries("subspace")).toEqual([]);
    expect(entries("v")).toHaveLength(1);
  });

  it("survives concurrent writers of the same subspace entry: no torn file, no leftovers", async () => {
    const subspace = await subspaceOf();
    const cache = new AlignmentCache(dir, 1e9);
    const other = new AlignmentCache(dir, 1e9);
    await Promise.all([cache.putSubspace(key("q"), TAG, subspace), other.putSubspace(key("q"), TAG, subspace)]);
    expect(entries("subspace")).toHaveLength(1);
    expect(await cache.getSubspace(key("q"), TAG, EXPECTED)).toEqual(subspace);
  });
});

/** A golden model folder whose files have content keys, as Hub files do, so the document cache is used. */
class KeyedFolder extends LocalFolder {
  override async contentKey(path: string): Promise<string> {
    return `key-of-${path}`;
  }
}

describe("AlignmentCache as the checkpoint's document cache", () => {
  const model = goldenPath("llama-gqa-qv", "base");
  const tensor = "model.layers.0.self_attn.q_proj.weight";

  async function shapeVia(cache: AlignmentCache): Promise<readonly number[]> {
    const checkpoint = await Checkpoint.open(new KeyedFolder(model), "", cache);
    try {
      return (await checkpoint.info(tensor)).shape;
    } finally {
      await checkpoint.close();
    }
  }

  it("reads the file again when a cached header is truncated, instead of failing every run", async () => {
    const cache = new AlignmentCache(dir, 1e9);
    const shape = await shapeVia(cache);
    const [document] = entries("doc");
    truncateSync(document!, 40);
    expect(await shapeVia(cache)).toEqual(shape);
    // The damaged entry was replaced by a good one.
    expect(await shapeVia(cache)).toEqual(shape);
    expect(entries("doc")).toHaveLength(1);
  });

  it("does not blame the model for a cached header whose recorded file size was changed", async () => {
    const cache = new AlignmentCache(dir, 1e9);
    const shape = await shapeVia(cache);
    const [document] = entries("doc");
    const text = readFileSync(document!, "utf8");
    writeFileSync(document!, text.replace(/"fileSize":(\d+)/, (_, size: string) => `"fileSize":${Number(size) + 1000}`));
    expect(await shapeVia(cache)).toEqual(shape);
  });
});
