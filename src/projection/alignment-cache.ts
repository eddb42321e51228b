import { createHash, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { mkdir, open, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
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
  tensor: z.string(),
  /** CRC-32 over what the entry claims (see entryChecksum): an entry without it, or not matching it, is a miss. */
  crc32: z.string().regex(/^[0-9a-f]{8}$/),
});

function digest(parts: unknown): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

/** The id of one module's V: its entry's name on disk, and its key in the projection thread's warm pairs. */
export function alignmentKeyId(key: AlignmentKey): string {
  return digest(key);
}

/**
 * The checksum of a V entry: its norms, tensor name and shape as stored, then V's bytes. A flipped bit
 * anywhere (disk, a manual edit, a torn copy) changes it, so damaged data is never used. CRC-32, not a
 * cryptographic hash: it guards against damage on the bot's own disk (whoever can write there owns the bot
 * anyway), and a warm run verifies gigabytes of V — sha256 took about 2 s for the 8B bench's 2.7 GB here,
 * CRC-32 under a second.
 */
function entryChecksum(metadata: Readonly<Record<string, string>>, shape: readonly number[], data: Uint8Array): string {
  const { wBaseNormSq, wAlignedNormSq, tensor } = metadata;
  const claims = crc32(JSON.stringify({ wBaseNormSq, wAlignedNormSq, tensor, shape }));
  return crc32(data, claims).toString(16).padStart(8, "0");
}

/** A document entry is `DOCUMENT_TAG<sha256 of the text>\n<text>`; anything else is a miss. */
const DOCUMENT_TAG = "safe-lora-cache sha256=";
const textChecksum = (text: string) => createHash("sha256").update(text).digest("hex");

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
    const dir = join(path, "..");
    await mkdir(dir, { recursive: true });
    const temporary = `${path}.${process.pid}-${randomBytes(4).toString("hex")}.partial`;
    try {
      await write(temporary);
      // Synced before the rename: after a crash the entry's name points at its whole content, not at a hole.
      const handle = await open(temporary, "r+");
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
    // The rename itself is durable once the folder is synced (best effort: not every file system allows it).
    const folder = await open(dir, "r").catch(() => null);
    await folder?.sync().catch(() => undefined);
    await folder?.close();
  }

  private async touch(path: string): Promise<void> {
    const now = new Date();
    await utimes(path, now, now).catch(() => undefined);
  }

  /**
   * V for one module of `shape` [d_out, d_in], into `into` (a reusable buffer of at least d_out × d_in values),
   * or null on a miss. Whatever is wrong with an entry — unreadable, truncated, another shape, a checksum that
   * does not match — makes it a miss, and the entry (which this cache wrote) is removed so the next put replaces it.
   */
  async getAlignment(key: AlignmentKey, shape: readonly [number, number], into?: Float32Array): Promise<Alignment | null> {
    const path = this.pathOf("v", alignmentKeyId(key));
    let file: SafetensorsFile;
    try {
      file = await SafetensorsFile.openPath(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") await rm(path, { force: true });
      return null;
    }
    let hit: Alignment | null = null;
    try {
      const metadata = EntryMetadata.safeParse(file.header.metadata);
      const info = file.header.tensors.get("v");
      const byteLength = shape[0] * shape[1] * 4;
      if (metadata.success && info && info.dtype === "F32" && String(info.shape) === String(shape) && info.end - info.begin === byteLength) {
        // Too small a buffer is the caller's matter, not damage: no read, and the entry stays.
        if (into && into.byteLength < byteLength) return null;
        const bytes = await file.readBytes("v", into ? new Uint8Array(into.buffer, into.byteOffset, byteLength) : undefined);
        if (entryChecksum(file.header.metadata, shape, bytes) === metadata.data.crc32) {
          const { wBaseNormSq, wAlignedNormSq } = metadata.data;
          hit = { v: into ? into.subarray(0, byteLength / 4) : decodeToFloat32(bytes, "F32"), wBaseNormSq, wAlignedNormSq };
        }
      }
    } catch {
      hit = null;
    } finally {
      await file.close();
    }
    if (hit) await this.touch(path);
    else await rm(path, { force: true });
    return hit;
  }

  async putAlignment(key: AlignmentKey, shape: readonly [number, number], alignment: Alignment): Promise<void> {
    const path = this.pathOf("v", alignmentKeyId(key));
    const data = new Uint8Array(alignment.v.buffer, alignment.v.byteOffset, alignment.v.byteLength);
    const metadata = { wBaseNormSq: String(alignment.wBaseNormSq), wAlignedNormSq: String(alignment.wAlignedNormSq), tensor: key.tensor };
    await this.writeAtomically(path, (temporary) =>
      writeSafetensors(temporary, { ...metadata, crc32: entryChecksum(metadata, shape, data) }, [{ name: "v", dtype: "F32", shape, data }]),
    );
  }

  /**
   * A small document (a safetensors header, a shard index) by the content hash of the file it came from, or
   * null on a miss; an entry whose checksum does not match its text is removed and is a miss.
   */
  async getDocument(contentKey: string, kind: string): Promise<string | null> {
    const path = this.pathOf("doc", digest({ contentKey, kind }));
    let stored: string;
    try {
      stored = await readFile(path, "utf8");
    } catch {
      return null;
    }
    const newline = stored.indexOf("\n");
    const text = stored.slice(newline + 1);
    if (newline === -1 || stored.slice(0, newline) !== `${DOCUMENT_TAG}${textChecksum(text)}`) {
      await rm(path, { force: true });
      return null;
    }
    await this.touch(path);
    return text;
  }

  async putDocument(contentKey: string, kind: string, text: string): Promise<void> {
    const path = this.pathOf("doc", digest({ contentKey, kind }));
    await this.writeAtomically(path, (temporary) => writeFile(temporary, `${DOCUMENT_TAG}${textChecksum(text)}\n${text}`));
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
