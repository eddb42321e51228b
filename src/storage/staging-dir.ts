import { createHash, randomBytes } from "node:crypto";
import { rmdirSync, unlinkSync } from "node:fs";
import { mkdir, readdir, rmdir, unlink } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { cleanUpOnExit } from "./exit-cleanup.js";
import { removeFoldersOfGoneProcesses } from "./process-alive.js";

/**
 * `safe-lora-staging-<host>-<pid>-<random>`: a folder is known stale only when this host made it and its process
 * is gone. The host is in the name because a temporary folder may be shared by containers, whose process ids
 * mean nothing here.
 */
const HOST = createHash("sha256").update(hostname()).digest("hex").slice(0, 8);
const NAME = new RegExp(`^safe-lora-staging-${HOST}-(\\d+)-[0-9a-f]{8}$`);

/**
 * A private folder where a run writes its outputs as it goes (a variant's weights, module by module), so that
 * they never have to sit in memory whole, before they are written to `--out` or committed. Removing it removes
 * only the files this object made and then the folder if that leaves it empty: never anything it did not create.
 * It is removed on SIGINT/SIGTERM/SIGHUP and at exit too; one left by a killed run is removed by the next run.
 */
export class StagingDir {
  private readonly files = new Set<string>();
  private removed = false;
  private readonly forget: () => void;

  private constructor(readonly path: string) {
    this.forget = cleanUpOnExit(() => this.removeSync());
  }

  /** Creates a staging folder in `parent` (default: the system's temporary folder). */
  static async create(parent: string = tmpdir()): Promise<StagingDir> {
    await mkdir(parent, { recursive: true });
    await removeStale(parent);
    const path = join(parent, `safe-lora-staging-${HOST}-${process.pid}-${randomBytes(4).toString("hex")}`);
    await mkdir(path, { mode: 0o700 });
    return new StagingDir(path);
  }

  /** The path of a new file `name` in the folder, which `remove()` will delete. */
  file(name: string): string {
    if (!/^[\w.-]+$/.test(name) || name.startsWith(".")) throw new Error(`not a plain file name for the staging folder: ${JSON.stringify(name)}`);
    if (this.removed) throw new Error(`the staging folder ${this.path} was already removed`);
    this.files.add(name);
    return join(this.path, name);
  }

  /** Deletes one of its files before the rest (an intermediate file that is no longer needed). */
  async delete(name: string): Promise<void> {
    if (!this.files.delete(name)) return;
    await unlink(join(this.path, name)).catch(ignoreMissing);
  }

  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    this.forget();
    for (const name of this.files) await unlink(join(this.path, name)).catch(ignoreMissing);
    this.files.clear();
    await rmdir(this.path).catch(() => undefined);
  }

  private removeSync(): void {
    if (this.removed) return;
    this.removed = true;
    for (const name of this.files) {
      try {
        unlinkSync(join(this.path, name));
      } catch {
        // Already gone, or not ours to remove.
      }
    }
    try {
      rmdirSync(this.path);
    } catch {
      // Not empty: something else was put there, and it is left alone.
    }
  }
}

function ignoreMissing(error: NodeJS.ErrnoException): void {
  if (error.code !== "ENOENT") throw error;
}

/** Staging folders of processes that are gone (killed before they could clean up), by this class's names only. */
async function removeStale(parent: string): Promise<void> {
  await removeFoldersOfGoneProcesses(parent, await readdir(parent).catch(() => [] as string[]), NAME);
}
