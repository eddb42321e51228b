import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AlignmentCache } from "../../src/projection/alignment-cache.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "safe-lora-cache-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const key = (tensor: string) => ({ baseFile: "a".repeat(64), alignedFile: "b".repeat(64), tensor });
const alignment = (size: number, value: number) => ({ v: new Float32Array(size).fill(value), wBaseNormSq: 2, wAlignedNormSq: 3 });

function entries(): string[] {
  const root = join(dir, "v1", "v");
  return readdirSync(root, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

describe("AlignmentCache", () => {
  it("returns what was put, by content key, into a reusable buffer", async () => {
    const cache = new AlignmentCache(dir, 1e9);
    await cache.putAlignment(key("q"), [4, 8], alignment(32, 1.5));
    const buffer = new Float32Array(64);
    const hit = await cache.getAlignment(key("q"), buffer);
    expect(hit?.v.length).toBe(32);
    expect(Array.from(hit!.v)).toEqual(new Array(32).fill(1.5));
    expect(hit?.v.buffer).toBe(buffer.buffer);
    expect(hit).toMatchObject({ wBaseNormSq: 2, wAlignedNormSq: 3 });
    expect(await cache.getAlignment({ ...key("q"), alignedFile: "c".repeat(64) })).toBeNull();
  });

  it("evicts the least recently used entries beyond its limit", async () => {
    const cache = new AlignmentCache(dir, 3 * 1200);
    for (const name of ["a", "b", "c", "d"]) await cache.putAlignment(key(name), [16, 16], alignment(256, 1)); // ~1.2 KB each
    const past = Date.now() / 1000 - 100;
    for (const path of entries()) utimesSync(path, past, past);
    await cache.getAlignment(key("a")); // a hit makes "a" the most recently used
    expect(await cache.evict()).toBeGreaterThan(0);
    expect(entries()).toHaveLength(3);
    expect(await cache.getAlignment(key("a"))).not.toBeNull();
  });

  it("treats a damaged entry as a miss and removes it", async () => {
    const cache = new AlignmentCache(dir, 1e9);
    await cache.putAlignment(key("q"), [4, 8], alignment(32, 1));
    const [path] = entries();
    writeFileSync(path!, "torn");
    expect(await cache.getAlignment(key("q"))).toBeNull();
    expect(entries()).toEqual([]);
  });

  it("survives concurrent writers of the same entry: no torn file, no leftovers", async () => {
    const cache = new AlignmentCache(dir, 1e9);
    const other = new AlignmentCache(dir, 1e9);
    await Promise.all([cache.putAlignment(key("q"), [64, 64], alignment(4096, 7)), other.putAlignment(key("q"), [64, 64], alignment(4096, 7))]);
    expect(entries()).toHaveLength(1);
    expect(Array.from((await cache.getAlignment(key("q")))!.v.subarray(0, 3))).toEqual([7, 7, 7]);
  });
});
