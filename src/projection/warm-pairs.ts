import type { Alignment } from "./projection-session.js";
import type { Subspace } from "./subspace-operator.js";

/**
 * The warm tier in front of the alignment cache: per module, V and the weights' norms of recently used base/aligned
 * pairs, kept in the projection thread between runs so that a second adapter on a warm pair reads, decodes and
 * moves only its own tensors. Entries are keyed by the alignment cache's key (alignmentKeyId: the content of the
 * two weight files and the tensor), so a changed pair is a different key and never meets stale data.
 *
 * Least recently used first out, within `maxBytes` (V's bytes; the norms are noise). A run leases the entries it
 * found resident when it planned: a leased entry is not evicted until the lease ends, so a module planned as warm
 * is still there when it is computed. An evicted entry is dropped from the map, the only reference to its V: the
 * memory is the collector's at once. Beside an entry's V, the subspaces computed from it (subspace operator: U and
 * σ, by subspaceTag) are kept and go with it; their bytes count in the budget.
 *
 * On every provider V is kept here, in the thread's memory, as fp32. For the GPU providers that still means one
 * upload of V per module and run (onnxruntime-node copies a CPU tensor in on each run()); keeping V on the device
 * (the V output of the fused graph with `preferredOutputLocation: "gpu-buffer"`, held as an ort.Tensor and
 * disposed on eviction) is the next step, and is unverified here: no GPU was available to run it on.
 */
export class WarmPairs {
  /** Insertion order is recency: a use moves an entry to the end, eviction takes from the front. */
  private readonly entries = new Map<string, Alignment>();
  private readonly subspaces = new Map<string, Map<string, Subspace>>();
  private readonly pins = new Map<string, number>();
  private readonly leases = new Map<number, readonly string[]>();
  private nextLease = 1;
  private total = 0;

  constructor(private budget = 0) {}

  get maxBytes(): number {
    return this.budget;
  }

  /** Bytes of V held. */
  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.size;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  /** A new budget (each run brings the process's); a smaller one evicts at once what is not leased. */
  setBudget(maxBytes: number): void {
    this.budget = Math.max(0, maxBytes);
    this.makeRoom(0);
  }

  /** V for `id`, refreshed as the most recently used; undefined when not held. */
  get(id: string): Alignment | undefined {
    const entry = this.entries.get(id);
    if (entry) {
      this.entries.delete(id);
      this.entries.set(id, entry);
    }
    return entry;
  }

  /**
   * Keeps V for `id` when it fits, evicting least recently used entries that no lease holds; an entry larger than
   * the whole budget is not kept. Returns whether it was kept. The caller hands over `alignment.v`: it must not
   * write to it afterwards.
   */
  keep(id: string, alignment: Alignment): boolean {
    const bytes = alignment.v.byteLength;
    this.drop(id);
    if (bytes > this.budget || !this.makeRoom(bytes)) return false;
    this.entries.set(id, alignment);
    this.total += bytes;
    return true;
  }

  /** The subspace kept beside `id`'s V under `tag`; undefined when either is not held. */
  subspace(id: string, tag: string): Subspace | undefined {
    return this.entries.has(id) ? this.subspaces.get(id)?.get(tag) : undefined;
  }

  /** Keeps a subspace of `id`'s V beside it, when V is held and it fits; returns whether it was kept. */
  keepSubspace(id: string, tag: string, subspace: Subspace): boolean {
    if (!this.entries.has(id)) return false;
    if (this.subspace(id, tag)) return true;
    const bytes = subspaceBytes(subspace);
    if (!this.makeRoom(bytes, id) || !this.entries.has(id)) return false;
    let kept = this.subspaces.get(id);
    if (!kept) this.subspaces.set(id, (kept = new Map()));
    kept.set(tag, subspace);
    this.total += bytes;
    return true;
  }

  /** Leases the entries of `ids` that are held (refreshing them) and says which; release() ends the lease. */
  lease(ids: readonly string[]): { readonly lease: number; readonly resident: readonly boolean[] } {
    const held = ids.filter((id) => this.get(id) !== undefined);
    for (const id of held) this.pins.set(id, (this.pins.get(id) ?? 0) + 1);
    const lease = this.nextLease++;
    this.leases.set(lease, held);
    return { lease, resident: ids.map((id) => this.entries.has(id)) };
  }

  release(lease: number): void {
    for (const id of this.leases.get(lease) ?? []) {
      const count = (this.pins.get(id) ?? 1) - 1;
      if (count > 0) this.pins.set(id, count);
      else this.pins.delete(id);
    }
    this.leases.delete(lease);
    // What a lease kept past a smaller budget goes now.
    this.makeRoom(0);
  }

  /** Evicts unleased entries (but `spare`), oldest first, until `bytes` more fit; false when they cannot. */
  private makeRoom(bytes: number, spare: string | null = null): boolean {
    for (const id of [...this.entries.keys()]) {
      if (this.total + bytes <= this.budget) break;
      if (!this.pins.has(id) && id !== spare) this.drop(id);
    }
    return this.total + bytes <= this.budget;
  }

  private drop(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.total -= entry.v.byteLength;
    for (const subspace of this.subspaces.get(id)?.values() ?? []) this.total -= subspaceBytes(subspace);
    this.subspaces.delete(id);
  }
}

function subspaceBytes(subspace: Subspace): number {
  return subspace.u.byteLength + subspace.sigma.byteLength;
}
