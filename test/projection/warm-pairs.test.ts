import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { WarmPairs } from "../../src/projection/warm-pairs.js";

/** An alignment whose V takes `bytes` bytes. */
const alignment = (bytes: number, fill = 1) => ({ v: new Float32Array(bytes / 4).fill(fill), wBaseNormSq: 1, wAlignedNormSq: 2 });

/** A subspace whose U and σ take `bytes` bytes in all (Float64: 8 per number). */
const subspace = (bytes: number) => ({ rows: 1, count: 1, u: new Float64Array(bytes / 8 - 1), sigma: new Float64Array(1), normSq: 1 });

describe("warm pairs", () => {
  it("keeps a subspace beside a held V, counted in the budget and gone with it", () => {
    const warm = new WarmPairs(400);
    expect(warm.keepSubspace("a", "sketch=14", subspace(80))).toBe(false);
    warm.keep("a", alignment(200));
    const kept = subspace(80);
    expect(warm.keepSubspace("a", "sketch=14", kept)).toBe(true);
    expect(warm.subspace("a", "sketch=14")).toBe(kept);
    expect(warm.subspace("a", "sketch=64")).toBeUndefined();
    expect(warm.bytes).toBe(280);
    // A new V pushes out a's V and its subspace together.
    warm.keep("b", alignment(200));
    expect(warm.has("a")).toBe(false);
    expect(warm.subspace("a", "sketch=14")).toBeUndefined();
    expect(warm.bytes).toBe(200);
    // A subspace that does not fit beside its V evicts others, never its own V.
    warm.keep("c", alignment(200));
    expect(warm.keepSubspace("c", "sketch=14", subspace(160))).toBe(true);
    expect([warm.has("b"), warm.has("c"), warm.bytes]).toEqual([false, true, 360]);
  });

  it("keeps entries within the budget, least recently used out first", () => {
    const warm = new WarmPairs(300);
    expect(warm.keep("a", alignment(100))).toBe(true);
    expect(warm.keep("b", alignment(100))).toBe(true);
    expect(warm.keep("c", alignment(100))).toBe(true);
    expect(warm.bytes).toBe(300);
    // a is used, so b is now the least recent: d pushes b out, not a.
    expect(warm.get("a")).toBeDefined();
    expect(warm.keep("d", alignment(100))).toBe(true);
    expect([warm.has("a"), warm.has("b"), warm.has("c"), warm.has("d")]).toEqual([true, false, true, true]);
    // A large one pushes out as many as it needs, oldest first.
    expect(warm.keep("e", alignment(200))).toBe(true);
    expect([warm.has("a"), warm.has("c"), warm.has("d"), warm.has("e")]).toEqual([false, false, true, true]);
    expect(warm.bytes).toBe(300);
    expect(warm.size).toBe(2);
  });

  it("does not keep an entry larger than the whole budget, nor evict anything for it", () => {
    const warm = new WarmPairs(300);
    warm.keep("a", alignment(200));
    expect(warm.keep("huge", alignment(400))).toBe(false);
    expect(warm.has("huge")).toBe(false);
    expect(warm.has("a")).toBe(true);
    expect(warm.bytes).toBe(200);
  });

  it("replaces an entry kept again under the same key, counting its bytes once", () => {
    const warm = new WarmPairs(300);
    warm.keep("a", alignment(100, 1));
    warm.keep("a", alignment(200, 2));
    expect(warm.bytes).toBe(200);
    expect(warm.get("a")!.v[0]).toBe(2);
  });

  it("keeps what a run leased until the lease ends, even past a smaller budget", () => {
    const warm = new WarmPairs(300);
    warm.keep("a", alignment(100));
    warm.keep("b", alignment(100));
    const { lease, resident } = warm.lease(["a", "x", "b"]);
    expect(resident).toEqual([true, false, true]);
    // Leased entries are not evicted to make room: c does not fit beside them, and is not kept.
    warm.setBudget(200);
    expect(warm.keep("c", alignment(150))).toBe(false);
    warm.setBudget(100);
    expect([warm.has("a"), warm.has("b")]).toEqual([true, true]);
    warm.release(lease);
    expect(warm.bytes).toBeLessThanOrEqual(100);
    expect(warm.size).toBe(1);
  });

  it("holds an entry while any of several leases on it lasts", () => {
    const warm = new WarmPairs(100);
    warm.keep("a", alignment(100));
    const first = warm.lease(["a"]);
    const second = warm.lease(["a"]);
    warm.release(first.lease);
    expect(warm.keep("b", alignment(100))).toBe(false);
    warm.release(second.lease);
    expect(warm.keep("b", alignment(100))).toBe(true);
    expect(warm.has("a")).toBe(false);
  });

  it("a budget of 0 keeps nothing", () => {
    const warm = new WarmPairs();
    expect(warm.keep("a", alignment(4))).toBe(false);
    expect(warm.size).toBe(0);
  });

  it("leaves no reference to an evicted V: the collector takes it", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const warm = new WarmPairs(8 << 20);
    // Made in a function of its own, so that no slot of this (async) one holds on to it.
    const keepOne = (): WeakRef<Float32Array> => {
      const first = alignment(4 << 20);
      warm.keep("a", first);
      return new WeakRef(first.v);
    };
    const evicted = keepOne();
    const kept = alignment(4 << 20);
    warm.keep("b", kept);
    warm.keep("c", alignment(4 << 20));
    expect(warm.has("a")).toBe(false);
    // WeakRefs hold their target until the current job ends.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(evicted.deref()).toBeUndefined();
    expect(warm.get("b")!.v).toBe(kept.v);
  });
});
