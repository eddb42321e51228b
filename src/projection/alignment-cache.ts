import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { decodeToFloat32 } from "../safetensors/dtype.js";
import { SafetensorsFile } from "../safetensors/safetensors-file.js";
import { writeSafetensors } from "../safetensors/write.js";
import type { Alignment } from "./projection-session.js";

/** Bump when the stored form changes: old entries are then simply never found, and age out. */
const FORMAT = "v1";

/** What identifies one module's V: the content of the files it came from, not their names or commits. */
export interface AlignmentKey {
  /** Content hash (LFS sha256 or git blob id) of the base checkpoint file holding the tensor. */
  readonly baseFile: string;
  readonly alignedFile: string;
  readonly tensor: string;
}

const EntryMetadata = z.object({
  wBaseNormSq: z.coerce.number(),
  wAlignedNormSq: z.coerce.number(),
});

function digest(parts: unknown): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

/**
 * On-disk cache of what a job derives from a base/aligned pair: per module V in fp32 (plus the two weights'
 * norms), and the small documents needed to plan a run (safetensors headers, shard indexes), keyed by the
 * content of the files they came from. A commit that only edits a README keeps every entry valid.
 *
 * Entries are written to a unique temporary name and renamed into place, so concurrent jobs never see a torn
 * entry; a reader holding an entry that another process evicts keeps reading it (POSIX unlink semantics).
 * The size limit is enforced by `evict()`, least recently used first (a hit refreshes an entry's mtime).
 */
export class AlignmentCache {
  private readonly root: string;

  constructor(
    dir: string,
    /** Size limit in bytes for everything under `dir`. */
    readonly maxBytes: number,
  ) {
    this.root = join(dir, FORMAT);
  }

  private pathOf(kind: "v" | "doc", key: string): string {
    return join(this.root, kind, key.slice(0, 2), `${key}.${kind === "v" ? "safetensors" : "json"}`);
  }

  private async writeAtomically(path: string, write: (temporary: string) => Promise<void>): Promise<void> {
    await mkdir(join(path, ".."), { recursive: true });
    const temporary = `${path}.${process.pid}-${randomBytes(4).toString("hex")}.partial`;
    try {
      await write(temporary);
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }

  private async touch(path: string): Promise<void> {
    const now = new Date();
    await utimes(path, now, now).catch(() => undefined);
  }

  /** V for one module into `into` (a reusable buffer of at least d_out × d_in values), or null on a miss. */
  async getAlignment(key: AlignmentKey, into?: Float32Array): Promise<Alignment | null> {
    const path = this.pathOf("v", digest(key));
    let file: SafetensorsFile;
    try {
      file = await SafetensorsFile.openPath(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      // A damaged entry (disk full while writing, manual edits) is a miss; it is replaced on the next put.
      await rm(path, { force: true });
      return null;
    }
    try {
      const metadata = EntryMetadata.safeParse(file.header.metadata);
      const info = file.header.tensors.get("v");
      // A mismatch (another format, a buffer too small for it) is a miss, never a crash.
      if (!metadata.success || !info || info.dtype !== "F32" || (into && into.byteLength < info.end - info.begin)) return null;
      const bytes = await file.readBytes("v", into ? new Uint8Array(into.buffer, into.byteOffset, info.end - info.begin) : undefined);
      const v = into ? into.subarray(0, bytes.byteLength / 4) : decodeToFloat32(bytes, "F32");
      await this.touch(path);
      return { v, ...metadata.data };
    } finally {
      await file.close();
    }
  }

  async putAlignment(key: AlignmentKey, shape: readonly [number, number], alignment: Alignment): Promise<void> {
    const path = this.pathOf("v", digest(key));
    const data = new Uint8Array(alignment.v.buffer, alignment.v.byteOffset, alignment.v.byteLength);
    await this.writeAtomically(path, (temporary) =>
      writeSafetensors(
        temporary,
        { wBaseNormSq: String(alignment.wBaseNormSq), wAlignedNormSq: String(alignment.wAlignedNormSq), tensor: key.tensor },
        [{ name: "v", dtype: "F32", shape, data }],
      ),
    );
  }

  /** A small document (a safetensors header, a shard index) by the content hash of the file it came from. */
  async getDocument(contentKey: string, kind: string): Promise<string | null> {
    const path = this.pathOf("doc", digest({ contentKey, kind }));
    try {
      const text = await readFile(path, "utf8");
      await this.touch(path);
      return text;
    } catch {
      return null;
    }
  }

  async putDocument(contentKey: string, kind: string, text: string): Promise<void> {
    const path = this.pathOf("doc", digest({ contentKey, kind }));
    await this.writeAtomically(path, (temporary) => writeFile(temporary, text));
  }

  /** Removes least recently used entries until the cache fits its limit. Returns the bytes removed. */
  async evict(): Promise<number> {
    const entries: Array<{ path: string; size: number; used: number }> = [];
    for (const kind of ["v", "doc"]) {
      const base = join(this.root, kind);
      const shards = await readdir(base).catch(() => [] as string[]);
      for (const shard of shards) {
        for (const name of await readdir(join(base, shard)).catch(() => [] as string[])) {
          if (name.endsWith(".partial")) continue;
          const path = join(base, shard, name);
          const info = await stat(path).catch(() => null);
          if (info) entries.push({ path, size: info.size, used: info.mtimeMs });
        }
      }
    }
    let total = entries.reduce((sum, entry) => sum + entry.size, 0);
    let removed = 0;
    for (const entry of entries.sort((a, b) => a.used - b.used)) {
      if (total <= this.maxBytes) break;
      await rm(entry.path, { force: true });
      total -= entry.size;
      removed += entry.size;
    }
    return removed;
  }
}
