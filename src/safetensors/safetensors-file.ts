import { SafeLoraError } from "../errors.js";
import { FileByteSource, type ByteSource } from "../storage/byte-source.js";
import { readHeader, type SafetensorsHeader, type TensorInfo } from "./header.js";

/** One safetensors file opened for random access: its validated header and its byte source. */
export class SafetensorsFile {
  private constructor(
    readonly source: ByteSource,
    readonly header: SafetensorsHeader,
  ) {}

  /** Reads and validates the header; the source is closed again if the header is bad. */
  static async open(source: ByteSource): Promise<SafetensorsFile> {
    try {
      return new SafetensorsFile(source, await readHeader(source));
    } catch (error) {
      await source.close();
      throw error;
    }
  }

  /** Wraps a source whose header is already known (from a cache); nothing is read now. */
  static withHeader(source: ByteSource, header: SafetensorsHeader): SafetensorsFile {
    return new SafetensorsFile(source, header);
  }

  static async openPath(path: string): Promise<SafetensorsFile> {
    return SafetensorsFile.open(await FileByteSource.open(path));
  }

  get description(): string {
    return this.source.description;
  }

  info(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) throw new SafeLoraError(`${this.description} has no tensor "${name}"`, "missing-tensor");
    return info;
  }

  /** The raw little-endian bytes of one tensor, read by its byte range only. */
  async readBytes(name: string, into?: Uint8Array): Promise<Uint8Array> {
    const info = this.info(name);
    return this.source.read(info.begin, info.end - info.begin, into);
  }

  close(): Promise<void> {
    return this.source.close();
  }
}
