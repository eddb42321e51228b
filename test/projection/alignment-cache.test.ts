import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AlignmentCache } from "../../src/projection/alignment-cache.js";
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

function entries(kind: "v" | "doc" = "v"): string[] {
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
