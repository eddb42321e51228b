import { open, type FileHandle } from "node:fs/promises";

/**
 * Random access to the bytes of one file, wherever it lives (a local file here; an HTTP resolve URL read
 * by range requests for Hub repos). Readers count what they fetch so reports can say what a run cost.
 */
export interface ByteSource {
  /** Where the bytes come from, for messages: a path or a URL. */
  readonly description: string;
  /** Total size of the file in bytes. */
  readonly size: number;
  /** Bytes fetched so far. */
  readonly bytesRead: number;
  /** Reads exactly `length` bytes at `offset`, into `into` when given (it must be at least `length` long). */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** fs reads are limited to 2 GiB - 1 per call; larger tensors are read in pieces. */
const MAX_READ_CHUNK = 1 << 30;

/** A local file, read with positioned reads so that only the requested ranges are touched. */
export class FileByteSource implements ByteSource {
  bytesRead = 0;

  private constructor(
    readonly description: string,
    readonly size: number,
    private readonly handle: FileHandle,
  ) {}

  static async open(path: string): Promise<FileByteSource> {
    const handle = await open(path, "r");
    try {
      const { size } = await handle.stat();
      return new FileByteSource(path, size, handle);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`read of ${length} bytes at ${offset} is outside ${this.description} (${this.size} bytes)`);
    }
    // A fresh ArrayBuffer keeps byteOffset 0, so typed-array views of the result are always aligned.
    const target = into ? into.subarray(0, length) : new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const chunk = Math.min(length - done, MAX_READ_CHUNK);
      const { bytesRead } = await this.handle.read(target, done, chunk, offset + done);
      if (bytesRead === 0) throw new Error(`${this.description} ended early: it shrank while being read`);
      done += bytesRead;
    }
    this.bytesRead += length;
    return target;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/**
 * A source opened only when first read. Used when a file's header came from a cache: if every tensor
 * needed is cached too, the file is never requested at all.
 */
export class LazyByteSource implements ByteSource {
  private source: Promise<ByteSource> | null = null;
  private opened: ByteSource | null = null;

  constructor(
    readonly description: string,
    readonly size: number,
    private readonly open: () => Promise<ByteSource>,
  ) {}

  get bytesRead(): number {
    return this.opened?.bytesRead ?? 0;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    this.source ??= this.open().then((source) => (this.opened = source));
    return (await this.source).read(offset, length, into);
  }

  async close(): Promise<void> {
    if (this.source) await (await this.source).close();
  }
}
