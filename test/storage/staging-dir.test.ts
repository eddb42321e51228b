import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StagingDir } from "../../src/storage/staging-dir.js";
import { spawnSource } from "../helpers/cli.js";

let parent: string;
beforeEach(() => {
  parent = mkdtempSync(join(tmpdir(), "safe-lora-staging-test-"));
});
afterEach(() => rmSync(parent, { recursive: true, force: true }));

describe("a staging folder", () => {
  it("removes the files it made, then itself, and nothing more", async () => {
    const staging = await StagingDir.create(parent);
    writeFileSync(staging.file("weights.bin"), "staged");
    writeFileSync(join(staging.path, "someone-elses.txt"), "not ours");
    await staging.remove();
    expect(readdirSync(staging.path)).toEqual(["someone-elses.txt"]);
    await staging.remove();
    rmSync(staging.path, { recursive: true });
    const clean = await StagingDir.create(parent);
    writeFileSync(clean.file("a.bin"), "a");
    writeFileSync(clean.file("b.bin"), "b");
    await clean.delete("a.bin");
    expect(readdirSync(clean.path)).toEqual(["b.bin"]);
    await clean.remove();
    expect(existsSync(clean.path)).toBe(false);
    expect(() => clean.file("c.bin")).toThrow(/already removed/);
  });

  it("takes plain file names only", async () => {
    const staging = await StagingDir.create(parent);
    for (const name of ["../escape", "a/b", ".hidden", ""]) expect(() => staging.file(name)).toThrow(/not a plain file name/);
    await staging.remove();
  });

  it("is removed when the process exits without removing it", { timeout: 60_000 }, async () => {
    const script = join(parent, "stage-and-exit.mts");
    const source = new URL("../../src/storage/staging-dir.ts", import.meta.url).pathname;
    writeFileSync(
      script,
      `import { writeFileSync } from "node:fs";
import { StagingDir } from ${JSON.stringify(source)};
const staging = await StagingDir.create(process.argv[2]);
writeFileSync(staging.file("weights.bin"), "staged");
process.stdout.write(staging.path);
`,
    );
    const result = await spawnSource(script, [join(parent, "tmp")], { cwd: parent });
    expect(result.code).toBe(0);
    expect(existsSync(result.stdout)).toBe(false);
  });

  it("removes folders left by killed runs of this host, and keeps those of live processes and of other hosts", async () => {
    const mine = await StagingDir.create(parent);
    const host = basename(mine.path).split("-")[3]!;
    const dead = join(parent, `safe-lora-staging-${host}-4194399-0badc0de`);
    const alive = join(parent, `safe-lora-staging-${host}-${process.pid}-0badc0de`);
    const elsewhere = join(parent, "safe-lora-staging-00000000-4194399-0badc0de");
    const unrelated = join(parent, "safe-lora-staging-notes");
    for (const dir of [dead, alive, elsewhere, unrelated]) mkdirSync(dir);
    writeFileSync(join(dead, "adapter_model.safetensors"), "half");
    const next = await StagingDir.create(parent);
    expect(existsSync(dead)).toBe(false);
    for (const dir of [alive, elsewhere, unrelated, mine.path]) expect(existsSync(dir)).toBe(true);
    await Promise.all([mine.remove(), next.remove()]);
  });
});
