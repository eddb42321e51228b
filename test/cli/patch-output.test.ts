import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCli, spawnCli, spawnSource } from "../helpers/cli.js";
import { copyGolden, type CaseCopy } from "../helpers/fixture-copy.js";

let fixture: CaseCopy;
let out: string;
beforeEach(() => {
  fixture = copyGolden("llama-gqa-qv");
  out = join(fixture.root, "out");
});
afterEach(() => fixture.remove());

const VARIANT = ["README.md", "adapter_config.json", "adapter_model.safetensors", "safe-lora-report.json", "similarity.svg"];
const pairArgs = () => ["--base", fixture.base, "--aligned", fixture.chat];
const patch = (...extra: string[]) => runCli(["patch", "--adapter", fixture.adapter, ...pairArgs(), "--out", out, ...extra]);
const leftovers = (dir: string) => readdirSync(dir).filter((name) => /\.(staging|old)-/.test(name));

/** A folder's names and contents, to show that a refused run touched nothing. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => [join(entry.parentPath, entry.name), readFileSync(join(entry.parentPath, entry.name)).toString("base64")]),
  );
}

describe("safe-lora patch --force replaces only a previous output", () => {
  it("replaces a previous output in place: --out is the same folder throughout, holding the new files", async () => {
    expect((await patch("--select", "threshold:0.2")).code).toBe(0);
    const before = statSync(out).ino;
    const forced = await patch("--force", "--select", "threshold:0.5", "--json");
    expect(forced.code).toBe(0);
    // The folder was never moved aside (renaming it away is the moment --out would be missing).
    expect(statSync(out).ino).toBe(before);
    expect(readdirSync(out).sort()).toEqual(VARIANT);
    expect(JSON.parse(readFileSync(join(out, "safe-lora-report.json"), "utf8"))).toMatchObject({ selection: { value: 0.5 } });
    expect(leftovers(fixture.root)).toEqual([]);
  });

  it("refuses a folder with files safe-lora does not write, and keeps them", async () => {
    mkdirSync(out);
    writeFileSync(join(out, "notes.txt"), "mine");
    const result = await patch("--force");
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^safe-lora: --out .*out is not a previous output of safe-lora \(it holds "notes.txt", which safe-lora does not write\), so --force will not replace it/);
    expect(readdirSync(out)).toEqual(["notes.txt"]);
  });

  it("refuses a previous output to which other files were added", async () => {
    expect((await patch()).code).toBe(0);
    writeFileSync(join(out, "eval-results.json"), "{}");
    const result = await patch("--force");
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/it holds "eval-results.json"/);
    expect(readdirSync(out).sort()).toEqual([...VARIANT, "eval-results.json"].sort());
  });

  it("never replaces the adapter folder, even when it is itself a previous output", async () => {
    // A variant patched again in place would overwrite the input it is read from.
    expect((await patch()).code).toBe(0);
    const before = snapshot(out);
    const result = await runCli(["patch", "--adapter", out, ...pairArgs(), "--out", out, "--force"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--out .* is the input folder .* or a folder above it/);
    expect(snapshot(out)).toEqual(before);
  });

  it("never replaces the adapter's --subfolder", async () => {
    const variant = join(fixture.root, "repo", "sub");
    expect((await runCli(["patch", "--adapter", fixture.adapter, ...pairArgs(), "--out", variant])).code).toBe(0);
    const before = snapshot(variant);
    const result = await runCli(["patch", "--adapter", join(fixture.root, "repo"), "--subfolder", "sub", ...pairArgs(), "--out", variant, "--force"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/is the input folder .*sub or a folder above it/);
    expect(snapshot(variant)).toEqual(before);
  });

  it("never replaces a folder above an input", async () => {
    const before = snapshot(fixture.root);
    const result = await runCli(["patch", "--adapter", fixture.adapter, ...pairArgs(), "--out", fixture.root, "--force"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/is the input folder .* or a folder above it/);
    expect(snapshot(fixture.root)).toEqual(before);
  });

  it("never replaces the current directory", async () => {
    writeFileSync(join(fixture.root, "work-in-progress.txt"), "keep me");
    const before = snapshot(fixture.root);
    const result = await spawnCli(["patch", "--adapter", "adapter", "--base", "base", "--aligned", "chat", "--out", ".", "--force"], { cwd: fixture.root });
    expect(result.stderr).toMatch(/--out .* is the current directory .* or a folder above it; --force replaces only a previous output/);
    expect(result.code).toBe(2);
    expect(snapshot(fixture.root)).toEqual(before);
  });

  it("checks --out before opening any input: no Hub request for a run that could not write", async () => {
    mkdirSync(out);
    writeFileSync(join(out, "notes.txt"), "mine");
    // The offline environment's Hub is a closed port: reaching for it first would fail differently.
    const result = await runCli(["patch", "--adapter", "acme/some-lora", "--out", out]);
    expect(result.stderr).toMatch(/^safe-lora: .*out already exists and is not empty; pass --force/);
    expect(result.code).toBe(2);
  });
});

describe("safe-lora patch leaves no staging folders", () => {
  it("removes staging folders of runs that were killed, and keeps those of a run still going", async () => {
    const gone = join(fixture.root, ".out.staging-4194399-0badc0de");
    const running = join(fixture.root, `.out.staging-${process.pid}-0badc0de`);
    const unrelated = join(fixture.root, ".out.staging-notes");
    for (const dir of [gone, running, unrelated]) mkdirSync(dir);
    writeFileSync(join(gone, "adapter_model.safetensors"), "half");
    expect((await patch()).code).toBe(0);
    expect(existsSync(gone)).toBe(false);
    expect(existsSync(running)).toBe(true);
    expect(existsSync(unrelated)).toBe(true);
  });

  it("removes its staging folder on Ctrl-C while writing, then dies of the signal", async () => {
    const script = join(fixture.root, "write-slowly.mts");
    const atomicDir = new URL("../../src/storage/atomic-dir.ts", import.meta.url).pathname;
    writeFileSync(
      script,
      `import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeDirAtomically } from ${JSON.stringify(atomicDir)};
await writeDirAtomically(process.argv[2]!, async (staging) => {
  await writeFile(join(staging, "adapter_model.safetensors"), "partial");
  process.stderr.write("staged\\n");
  await new Promise(() => setInterval(() => undefined, 1000));
});
`,
    );
    const result = await spawnSource(script, [out], { cwd: fixture.root, onStderr: (text, child) => text.includes("staged") && child.kill("SIGINT") });
    expect(result.signal).toBe("SIGINT");
    expect(leftovers(fixture.root)).toEqual([]);
    expect(existsSync(out)).toBe(false);
  });
});

describe("safe-lora patch in a shell set up for other things", () => {
  it("ignores environment variables only the bot reads", async () => {
    const result = await runCli(["patch", "--adapter", fixture.adapter, ...pairArgs(), "--out", out], { LOG_LEVEL: "warning", PORT: "localhost:3000", SAFE_LORA_POLL_MS: "often" });
    expect(result.stderr).not.toMatch(/safe-lora: /);
    expect(result.code).toBe(0);
  });

  it("still refuses a bad value of a variable patch reads", async () => {
    const result = await runCli(["patch", "--adapter", fixture.adapter, ...pairArgs(), "--out", out], { SAFE_LORA_CACHE_GB: "lots" });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/environment variable SAFE_LORA_CACHE_GB/);
  });

  it("names the output after a local folder whose path holds '@', never splitting it as a revision", async () => {
    const adapter = join(fixture.root, "runs", "at@dir", "lora@step100");
    cpSync(fixture.adapter, adapter, { recursive: true });
    const result = await spawnCli(["patch", "--adapter", "runs/at@dir/lora@step100", "--base", "base", "--aligned", "chat"], { cwd: fixture.root });
    expect(result.stderr).not.toMatch(/safe-lora: /);
    expect(result.code).toBe(0);
    expect(readdirSync(join(fixture.root, "lora@step100-safe-lora")).sort()).toEqual(VARIANT);
    expect(existsSync(join(fixture.root, "at-safe-lora"))).toBe(false);
  });
});
