import { createHash, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { mkdir, open, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { decodeToFloat32 } from "../safetensors/dtype.js";
import { SafetensorsFile } from "../safetensors/safetensors-file.js";
import { writeSafetensors } from "../safetensors/write.js";
import type { Alignment } from "./projection-session.js";
import type { Subspace } from "./subspace-operator.js";

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

const SubspaceMetadata = z.object({
  normSq: z.coerce.number(),
  tensor: z.string(),
  /** subspaceTag: the sketch's width and seed the subspace was computed with. */
  tag: z.string(),
  /** CRC-32 over the claims (tag, tensor, norm, shape), then U's and σ's bytes (subspaceChecksum). */
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
 * A subspace entry's name: the module's alignment key and the subspace's tag (one entry per V and sketch width). It is
 * an entry of its own beside V's, each used and aged out on its own.
 */
function subspaceKeyId(key: AlignmentKey, tag: string): string {
  return digest({ alignment: alignmentKeyId(key), subspace: tag });
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
  return checksum({ wBaseNormSq, wAlignedNormSq, tensor, shape }, [data]);
}

/** CRC-32 of an entry's claims (as JSON), continued over its tensors' bytes in order. */
function checksum(claims: unknown, data: readonly Uint8Array[]): string {
  let crc = crc32(JSON.stringify(claims));
  for (const bytes of data) crc = crc32(bytes, crc);
  return crc.toString(16).padStart(8, "0");
}

/** The checksum of a subspace entry: its tag, tensor, ‖V‖_F² and shape as stored, then U's and σ's bytes. */
function subspaceChecksum(metadata: Readonly<Record<string, string>>, rows: number, count: number, u: Uint8Array, sigma: Uint8Array): string {
  const { normSq, tensor, tag } = metadata;
  return checksum({ tag, tensor, normSq, rows, count }, [u, sigma]);
}

const bytesOf = (values: Float64Array | Float32Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/**
 * Whether a subspace read back is one the operator can use as computed: every value finite, σ non-negative and
 * descending, ‖V‖_F² positive (a zero V never gets a subspace). The checksum catches damage; this catches an entry
 * written wrong.
 */
function isUsableSubspace(subspace: Subspace): boolean {
  if (!Number.isFinite(subspace.normSq) || subspace.normSq <= 0) return false;
  for (let i = 0; i < subspace.count; i++) {
    const sigma = subspace.sigma[i]!;
    if (!Number.isFinite(sigma) || sigma < 0 || (i > 0 && sigma > subspace.sigma[i - 1]!)) return false;
  }
  return subspace.u.every(Number.isFinite);
}

/** What an entry reader returns for an entry it did not read, and which is therefore kept: a miss, not damage. */
const UNREAD = Symbol("unread");

/** Where entries live under the format's folder: V, subspaces of V (U and σ), documents. */
const ENTRY_KINDS = ["v", "subspace", "doc"] as const;
type EntryKind = (typeof ENTRY_KINDS)[number];

/** A document entry is `DOCUMENT_TAG<sha256 of the text>\n<text>`; anything else is a miss. */
const DOCUMENT_TAG = "safe-lora-cache sha256=";
const textChecksum = (text: string) => createHash("sha256").update(text).digest("hex");

/**
 * On-disk cache of what a job derives from a base/aligned pair: per module V in fp32 (plus the two weights'
 * norms), the subspaces the subspace operator computed of it (U and σ in Float64, by subspaceTag: the randomised
 * SVD costs far more than forming V), and the small documents needed to plan a run (safetensors headers, shard
 * indexes), keyed by the content of the files they came from. A commit that only edits a README keeps every entry valid.
 *
 * Entries are written to a unique temporary name and renamed into place, so concurrent jobs never see a torn
 * entry; a reader holding an entry that another process evicts keeps reading it (POSIX unlink semantics).
 * The size limit is enforced by `evict()`, least recently used first (a hit refreshes an entry's mtime).
 */
export class AlignmentCache {
  private readonly root: string;
  private readonly subspaceCounts = { hits: 0, misses: 0 };

  constructor(
    dir: string,
    /** Size limit in bytes for everything under `dir`. */
    readonly maxBytes: number,
  ) {
    this.root = join(dir, FORMAT);
  }

  /** Subspace lookups by this instance, hits and misses (a damaged or mismatched entry is a miss). */
  get subspaceLookups(): { readonly hits: number; readonly misses: number } {
    return { ...this.subspaceCounts };
  }

  private pathOf(kind: EntryKind, key: string): string {
    return join(this.root, kind, key.slice(0, 2), `${key}.${kind === "doc" ? "json" : "safetensors"}`);
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
    return this.readEntry(this.pathOf("v", alignmentKeyId(key)), async (file) => {
      const metadata = EntryMetadata.safeParse(file.header.metadata);
      const info = file.header.tensors.get("v");
      const byteLength = shape[0] * shape[1] * 4;
      if (!metadata.success || !info || info.dtype !== "F32" || String(info.shape) !== String(shape) || info.end - info.begin !== byteLength) return null;
      // Too small a buffer is the caller's matter, not damage: no read, and the entry stays.
      if (into && into.byteLength < byteLength) return UNREAD;
      const bytes = await file.readBytes("v", into ? new Uint8Array(into.buffer, into.byteOffset, byteLength) : undefined);
      if (entryChecksum(file.header.metadata, shape, bytes) !== metadata.data.crc32) return null;
      const { wBaseNormSq, wAlignedNormSq } = metadata.data;
      return { v: into ? into.subarray(0, byteLength / 4) : decodeToFloat32(bytes, "F32"), wBaseNormSq, wAlignedNormSq };
    });
  }

  /**
   * One entry read by `read`: a hit refreshes it (least recently used goes first); a miss removes it, as whatever is
   * wrong with an entry this cache wrote (unreadable, torn, mismatched) is damage, unless `read` left it UNREAD.
   */
  private async readEntry<T>(path: string, read: (file: SafetensorsFile) => Promise<T | null | typeof UNREAD>): Promise<T | null> {
    let file: SafetensorsFile;
    try {
      file = await SafetensorsFile.openPath(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") await rm(path, { force: true });
      return null;
    }
    let hit: T | null | typeof UNREAD;
    try {
      hit = await read(file);
    } catch {
      hit = null;
    } finally {
      await file.close();
    }
    if (hit === UNREAD) return null;
    if (hit === null) await rm(path, { force: true });
    else await this.touch(path);
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
   * The subspace of one module's V computed with `tag` (subspaceTag), or null on a miss. `expected`: the module's
   * d_out and the sketch's width, which bounds the directions a subspace of it can have. As for V, whatever is wrong
   * — unreadable, another shape or tag, a checksum that does not match, a value that is not finite — is a miss, and
   * the entry is removed so that the next put replaces it.
   */
  async getSubspace(key: AlignmentKey, tag: string, expected: { readonly rows: number; readonly width: number }): Promise<Subspace | null> {
    const hit = await this.readSubspace(key, tag, expected);
    this.subspaceCounts[hit ? "hits" : "misses"] += 1;
    return hit;
  }

  private readSubspace(key: AlignmentKey, tag: string, expected: { readonly rows: number; readonly width: number }): Promise<Subspace | null> {
    return this.readEntry(this.pathOf("subspace", subspaceKeyId(key, tag)), async (file) => {
      const metadata = SubspaceMetadata.safeParse(file.header.metadata);
      const u = file.header.tensors.get("u");
      const sigma = file.header.tensors.get("sigma");
      const rows = expected.rows;
      const count = sigma?.shape[0] ?? 0;
      const fits =
        metadata.success &&
        metadata.data.tag === tag &&
        metadata.data.tensor === key.tensor &&
        u?.dtype === "F64" &&
        sigma?.dtype === "F64" &&
        String(u.shape) === String([rows, count]) &&
        sigma.shape.length === 1 &&
        count >= 1 &&
        count <= expected.width &&
        u.end - u.begin === rows * count * 8 &&
        sigma.end - sigma.begin === count * 8;
      if (!fits) return null;
      const values = { u: new Float64Array(rows * count), sigma: new Float64Array(count) };
      await file.readBytes("u", bytesOf(values.u));
      await file.readBytes("sigma", bytesOf(values.sigma));
      const subspace: Subspace = { rows, count, ...values, normSq: metadata.data.normSq };
      const stored = subspaceChecksum(file.header.metadata, rows, count, bytesOf(values.u), bytesOf(values.sigma));
      return stored === metadata.data.crc32 && isUsableSubspace(subspace) ? subspace : null;
    });
  }

  async putSubspace(key: AlignmentKey, tag: string, subspace: Subspace): Promise<void> {
    const path = this.pathOf("subspace", subspaceKeyId(key, tag));
    const { rows, count } = subspace;
    const [u, sigma] = [bytesOf(subspace.u), bytesOf(subspace.sigma)];
    const metadata = { normSq: String(subspace.normSq), tensor: key.tensor, tag };
    await this.writeAtomically(path, (temporary) =>
      writeSafetensors(temporary, { ...metadata, crc32: subspaceChecksum(metadata, rows, count, u, sigma) }, [
        { name: "u", dtype: "F64", shape: [rows, count], data: u },
        { name: "sigma", dtype: "F64", shape: [count], data: sigma },
      ]),
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
    for (const kind of ENTRY_KINDS) {
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
