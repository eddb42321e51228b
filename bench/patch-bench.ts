// npm run bench [-- --cold] [-- --hub] [-- --warm-pairs [--warm-mb N] [--adapters N]] (--warm-mb 0: all cold)
//
// Patches a Llama-3-8B-shaped bf16 pair (q_proj + v_proj, 32 layers, r = 8) and prints wall time, peak RSS
// and bytes read next to an independent floor: numpy reading the same tensors and converting them to
// float32. Targets (issue 9): wall time ≤ 1.2× the floor, peak RSS < 1 GiB.
// --hub: the pair is served by the local Hub as 4 shards each, and the bench reports the bytes fetched over HTTP
// next to the checkpoints' full size, then the same with a warm alignment cache. Target (issue 9): the Hub run
// within 1.3× of the larger of the local patch of the same sharded pair and the time to merely fetch the same
// byte ranges from the same Hub with no compute (bench/fetch-only.ts); peak RSS < 1 GiB.
// --warm-pairs: the same sharded pair from the local Hub, and N adapters with different LoRA factors patched one
// after another in one worker process (bench/run-warm-pairs.ts): adapters per minute on a cold pair (the first, no
// disk cache) and on the warm pair (the others), for cpu and for each GPU provider that loads here.
import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { formatBytes } from "../src/report/format-bytes.js";
import { LocalHub } from "../src/local-hub/server.js";
import { folderFiles, seedRepo, type SeedFile } from "../src/local-hub/seed.js";
import { sha256OfFile } from "../src/local-hub/store.js";
import { writeAdapter, writeCheckpoint, type WrittenCheckpoint } from "./llama3-checkpoint.js";

const cold = process.argv.includes("--cold");
const hubMode = process.argv.includes("--hub");
const warmMode = process.argv.includes("--warm-pairs");
/** The value after `flag`, when given. */
const flagValue = (flag: string) => {
  const at = process.argv.indexOf(flag);
  return at === -1 ? undefined : process.argv[at + 1];
};
const root = join(process.cwd(), ".bench", hubMode || warmMode ? "llama3-8b-sharded" : "llama3-8b");
const paths = { base: join(root, "base"), aligned: join(root, "aligned"), adapter: join(root, "adapter"), out: join(root, "out") };
const CONFIG = JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 4096, num_hidden_layers: 32 });

const loadBefore = loadavg().map((load) => load.toFixed(2)).join(" ");
process.stderr.write(`preparing the Llama-3-8B-shaped checkpoints in ${root} (first run only: ~2.7 GB written, sparse)…\n`);
const shards = hubMode || warmMode ? 4 : 1;
const base = await writeCheckpoint(paths.base, false, shards);
const aligned = await writeCheckpoint(paths.aligned, true, shards);
await writeAdapter(paths.adapter);
for (const dir of [paths.base, paths.aligned]) writeFileSync(join(dir, "config.json"), CONFIG);

function dropCaches(): void {
  if (!cold) return;
  try {
    execFileSync("sh", ["-c", "sync && echo 1 > /proc/sys/vm/drop_caches"]);
  } catch {
    throw new Error("--cold needs permission to write /proc/sys/vm/drop_caches (root); run without it for warm-cache figures");
  }
}

function numpyFloor(): number {
  dropCaches();
  const files = (checkpoint: WrittenCheckpoint, dir: string) => checkpoint.files.filter((f) => f.endsWith(".safetensors")).map((f) => join(dir, f));
  const output = execFileSync("python3", [join("bench", "numpy_floor.py"), ...files(base, paths.base), ...files(aligned, paths.aligned)], { encoding: "utf8" });
  return (JSON.parse(output) as { seconds: number }).seconds;
}

interface PatchRun {
  wallMs: number;
  /** The child's CPU time, user + system, all its threads (absent from a checkout older than this line's). */
  cpuMs?: number;
  /** This process's CPU time while the child ran: the local Hub's share, in hub mode. */
  hubCpuMs: number;
  maxRssBytes: number;
  bytesRead: { base: number; aligned: number; adapter: number };
  projected: number;
  modules: number;
}
/** Runs one bench script in its own process and returns its last line's JSON. */
async function child<T>(script: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<T & { hubCpuMs: number }> {
  dropCaches();
  const cpu = process.cpuUsage();
  // Asynchronous, so that this process can serve the local Hub while the child runs.
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", join("bench", script), ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    maxBuffer: 1 << 20,
  });
  const { user, system } = process.cpuUsage(cpu);
  return { ...(JSON.parse(stdout.trim().split("\n").at(-1)!) as T), hubCpuMs: (user + system) / 1000 };
}

/** Where a run's time went: CPU seconds of the child and of the local Hub (this process), and the cores they kept busy. */
function cpuRow(what: string, run: { wallMs: number; cpuMs?: number; hubCpuMs: number }): string {
  // Runs of a checkout from before the bench read CPU time report none.
  if (run.cpuMs === undefined) return `${what}: not measured`;
  const total = run.cpuMs + run.hubCpuMs;
  return `${what} ${(run.cpuMs / 1000).toFixed(1)} + local Hub ${(run.hubCpuMs / 1000).toFixed(1)} = ${(total / 1000).toFixed(1)} CPU-s in ${seconds(run.wallMs)} (${(total / run.wallMs).toFixed(2)} cores busy)`;
}

const patchRun = (inputs: [string, string, string], env: NodeJS.ProcessEnv = {}) => child<PatchRun>("run-patch.ts", [...inputs, paths.out], env);

interface FetchRun {
  wallMs: number;
  cpuMs?: number;
  hubCpuMs: number;
  bytes: number;
  ranges: number;
  streams: number;
}
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const fastest = <T extends { wallMs: number }>(runs: readonly T[]): T => runs.reduce((a, b) => (a.wallMs <= b.wallMs ? a : b));
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const rssTarget = (peak: number) => `${mib(peak)}; target < 1 GiB: ${peak < 2 ** 30 ? "met" : "NOT met"}`;

/** LFS ids of the shards, computed once and kept next to them (hashing 16 GB of sparse files takes a while). */
async function seedFiles(dir: string): Promise<SeedFile[]> {
  const cachePath = join(dir, ".sha256.json");
  const known = (() => {
    try {
      return JSON.parse(readFileSync(cachePath, "utf8")) as Record<string, { size: number; mtimeMs: number; sha256: string }>;
    } catch {
      return {};
    }
  })();
  const files = (await folderFiles(dir)).filter((file) => !file.path.startsWith("."));
  const seeded: SeedFile[] = [];
  for (const file of files) {
    if (!("diskPath" in file) || !file.path.endsWith(".safetensors")) {
      seeded.push(file);
      continue;
    }
    const { size, mtimeMs } = statSync(file.diskPath);
    const entry = known[file.path];
    const sha256 = entry && entry.size === size && entry.mtimeMs === mtimeMs ? entry.sha256 : await sha256OfFile(file.diskPath);
    known[file.path] = { size, mtimeMs, sha256 };
    seeded.push({ ...file, sha256 });
  }
  writeFileSync(cachePath, JSON.stringify(known));
  return seeded;
}

const rows: Array<[string, string]> = [
  ["pair", `Llama-3-8B shapes, bf16, q_proj + v_proj × 32 layers; adapter r = 8 (fp32)${hubMode || warmMode ? "; 4 shards per model" : ""}`],
  ["page cache", cold ? "cold (dropped before each run)" : "warm"],
];
process.stderr.write(`measuring (${cold ? "cold page cache before each run" : "warm page cache"})…\n`);
const floors: number[] = [];
if (!warmMode) {
  if (!cold) numpyFloor(); // warm the page cache for both contenders
  floors.push(numpyFloor());
}

if (warmMode) {
  await warmPairs();
} else if (!hubMode) {
  const runs = [await patchRun([paths.adapter, paths.base, paths.aligned]), await patchRun([paths.adapter, paths.base, paths.aligned])];
  floors.push(numpyFloor());
  const floor = Math.min(...floors);
  const best = fastest(runs);
  const peak = Math.max(...runs.map((run) => run.maxRssBytes));
  const weightBytes = best.bytesRead.base + best.bytesRead.aligned;
  rows.push(
    ["patch wall time", `${(best.wallMs / 1000).toFixed(2)} s (runs: ${runs.map((r) => (r.wallMs / 1000).toFixed(2)).join(", ")} s)`],
    ["numpy floor", `${floor.toFixed(2)} s (runs: ${floors.map((s) => s.toFixed(2)).join(", ")} s): read the same tensors + bf16→fp32`],
    ["ratio to floor", `${(best.wallMs / 1000 / floor).toFixed(2)}× (target ≤ 1.2×: ${best.wallMs / 1000 <= 1.2 * floor ? "met" : "NOT met"})`],
    ["peak RSS", `${formatBytes(peak)} (${rssTarget(peak)})`],
    ["bytes read", `base ${formatBytes(best.bytesRead.base)} + aligned ${formatBytes(best.bytesRead.aligned)} = ${formatBytes(weightBytes)} of ${formatBytes(base.size + aligned.size)} in both checkpoints; target tensors ${formatBytes(base.targetBytes + aligned.targetBytes)} (exactly ${weightBytes} read vs ${base.targetBytes + aligned.targetBytes} target bytes: the rest is headers and config.json)`],
    ["modules", `${best.projected} of ${best.modules} projected (top-k:10)`],
  );
} else {
  process.stderr.write("serving the pair from the local Hub (hashing the shards once for their LFS ids)…\n");
  const hub = await new LocalHub().start();
  const user = hub.store.addUser("bench");
  await seedRepo(hub, "bench/llama3-8b-base", await seedFiles(paths.base));
  await seedRepo(hub, "bench/llama3-8b-instruct", await seedFiles(paths.aligned));
  await seedRepo(hub, "bench/llama3-8b-lora", await folderFiles(paths.adapter));
  const env = { HF_ENDPOINT: hub.url, HF_TOKEN: user.token };
  const ids: [string, string, string] = ["bench/llama3-8b-lora", "bench/llama3-8b-base", "bench/llama3-8b-instruct"];
  const served = () => ({ base: hub.bytesServed(ids[1]), aligned: hub.bytesServed(ids[2]) });
  try {
    // The two bounds the Hub run is held to: the same patch from the local files, and the same bytes fetched with no compute.
    const local = [await patchRun([paths.adapter, paths.base, paths.aligned]), await patchRun([paths.adapter, paths.base, paths.aligned])];
    const fetches: FetchRun[] = [];
    for (const streams of ["1", "4", "1", "4"]) fetches.push(await child<FetchRun>("fetch-only.ts", [...ids, streams], env));
    hub.resetCounters();
    const uncachedRuns = [await patchRun(ids, env)];
    const uncachedServed = served();
    uncachedRuns.push(await patchRun(ids, env));
    floors.push(numpyFloor());
    const cacheDir = mkdtempSync(join(tmpdir(), "safe-lora-bench-cache-"));
    hub.resetCounters();
    const filling = await patchRun(ids, { ...env, BENCH_CACHE_DIR: cacheDir });
    hub.resetCounters();
    const cached = await patchRun(ids, { ...env, BENCH_CACHE_DIR: cacheDir });
    const cachedServed = served();
    const cacheSize = Number(execFileSync("du", ["-sb", cacheDir], { encoding: "utf8" }).split("\t")[0]);
    rmSync(cacheDir, { recursive: true, force: true });
    const floor = Math.min(...floors);
    const full = base.size + aligned.size;
    const fetched = uncachedServed.base + uncachedServed.aligned;
    const uncached = fastest(uncachedRuns);
    const bestLocal = fastest(local);
    const fetchOnly = fastest(fetches);
    const bound = Math.max(bestLocal.wallMs, fetchOnly.wallMs);
    const ratio = uncached.wallMs / bound;
    const peak = Math.max(...uncachedRuns.map((run) => run.maxRssBytes));
    rows.push(
      ["checkpoints", `base ${formatBytes(base.size)} + aligned ${formatBytes(aligned.size)} = ${formatBytes(full)} in 4 shards each (every tensor of the real checkpoint present)`],
      ["fetched, no cache", `base ${formatBytes(uncachedServed.base)} + aligned ${formatBytes(uncachedServed.aligned)} = ${formatBytes(fetched)} (${((100 * fetched) / full).toFixed(2)}% of the checkpoints; target tensors ${formatBytes(base.targetBytes + aligned.targetBytes)}, ratio ${(fetched / (base.targetBytes + aligned.targetBytes)).toFixed(4)})`],
      ["local patch", `${seconds(bestLocal.wallMs)} (runs: ${local.map((run) => seconds(run.wallMs)).join(", ")}): the same sharded pair from local files; numpy floor ${floor.toFixed(2)} s`],
      ["fetch-only", `${seconds(fetchOnly.wallMs)} (runs: ${fetches.map((run) => `${seconds(run.wallMs)} × ${run.streams} stream${run.streams === 1 ? "" : "s"}`).join(", ")}): the same ${fetchOnly.ranges} ranges + headers, ${formatBytes(fetchOnly.bytes)}, no compute`],
      ["wall time, no cache", `${seconds(uncached.wallMs)} over HTTP (runs: ${uncachedRuns.map((run) => seconds(run.wallMs)).join(", ")}; ratio to the numpy floor ${(uncached.wallMs / 1000 / floor).toFixed(2)}×)`],
      ["Hub / max(local, fetch)", `${ratio.toFixed(2)}× of ${seconds(bound)} (target ≤ 1.3×: ${ratio <= 1.3 ? "met" : "NOT met"})`],
      ["CPU time", `${cpuRow("Hub run", uncached)}; ${cpuRow("local patch", bestLocal)}; ${cpuRow("fetch-only", fetchOnly)} — on ${availableParallelism()} cores`],
      ["peak RSS, no cache", rssTarget(peak)],
      ["filling the cache", `${seconds(filling.wallMs)}; cache holds ${formatBytes(cacheSize)}; peak RSS ${mib(filling.maxRssBytes)}`],
      ["warm cache", `${seconds(cached.wallMs)}; fetched base ${cachedServed.base} + aligned ${cachedServed.aligned} bytes; peak RSS ${mib(cached.maxRssBytes)}`],
      ["modules", `${uncached.projected} of ${uncached.modules} projected (top-k:10)`],
    );
  } finally {
    await hub.close();
  }
}
interface WarmPairsRun {
  provider: string;
  runs: Array<{ wallMs: number; memory?: { rssBytes: number; mainArrayBuffersBytes: number }; sources: { warm: number; cache: number; weights: number; keptWarm: number }; bytesRead: { base: number; aligned: number; adapter: number }; modules: number }>;
  warm: { entries: number; bytes: number; maxBytes: number };
  cpuMs: number;
  maxRssBytes: number;
}

/** Where the memory was, run by run (sampled by checkouts from run-warm-pairs' memory sampler on). */
function memoryRow(runs: WarmPairsRun["runs"]): [string, string] {
  return [`  memory per run`, `peak RSS ${runs.map((run) => mib(run.memory!.rssBytes)).join(", ")}; main thread's ArrayBuffers at most ${runs.map((run) => mib(run.memory!.mainArrayBuffersBytes)).join(", ")}`];
}

/**
 * Adapters per minute on one worker: the first adapter on a cold pair, then the others on the warm pair. With
 * `--warm-mb 0` every adapter is cold: the figure a cold run with warm pairs on should match.
 */
async function warmPairs(): Promise<void> {
  const warmMb = Number(flagValue("--warm-mb") ?? 4096);
  const count = Math.max(2, Number(flagValue("--adapters") ?? 5));
  process.stderr.write(`writing ${count} adapters with different LoRA factors; serving the pair from the local Hub…\n`);
  const hub = await new LocalHub().start();
  const user = hub.store.addUser("bench");
  await seedRepo(hub, "bench/llama3-8b-base", await seedFiles(paths.base));
  await seedRepo(hub, "bench/llama3-8b-instruct", await seedFiles(paths.aligned));
  const adapters: string[] = [];
  for (let index = 0; index < count; index++) {
    const dir = join(root, `adapter-${index}`);
    await writeAdapter(dir, 8, 1000 + index);
    adapters.push(`bench/llama3-8b-lora-${index}`);
    await seedRepo(hub, adapters[index]!, await folderFiles(dir));
  }
  const env = { HF_ENDPOINT: hub.url, HF_TOKEN: user.token };
  const perMinute = (ms: number) => (60_000 / ms).toFixed(1);
  let gpuLoaded = false;
  rows.push(["warm budget", `${warmMb} MB (SAFE_LORA_WARM_PAIRS_MB); the pair's V in fp32 is ${formatBytes(2 * base.targetBytes)}`], ["adapters", `${count} (different LoRA factors), one after another in one process; no disk cache`]);
  try {
    for (const ep of ["cpu", "cuda", "webgpu"] as const) {
      const result = await child<WarmPairsRun | { unavailable: string }>("run-warm-pairs.ts", ["bench/llama3-8b-base", "bench/llama3-8b-instruct", paths.out, ep, String(warmMb), ...adapters], env);
      if ("unavailable" in result) {
        rows.push([`${ep}`, `did not load: ${result.unavailable}`]);
        continue;
      }
      gpuLoaded ||= ep !== "cpu";
      const [first, ...warm] = result.runs;
      const mean = warm.reduce((sum, run) => sum + run.wallMs, 0) / warm.length;
      const fromWarm = warm.map((run) => run.sources.warm);
      const warmBytes = warm.map((run) => run.bytesRead.base + run.bytesRead.aligned);
      if (warmMb === 0) {
        // Warm pairs off: every adapter is a cold run, the figure a cold run with them on is held to.
        rows.push(
          [`cold, warm pairs off, ${ep}`, `${result.runs.map((run) => seconds(run.wallMs)).join(", ")} (each reads base + aligned ${formatBytes(first!.bytesRead.base + first!.bytesRead.aligned)} over HTTP)`],
          [`  worker process`, `peak RSS ${mib(result.maxRssBytes)}; ${(result.cpuMs / 1000).toFixed(1)} CPU-s in ${seconds(result.runs.reduce((sum, run) => sum + run.wallMs, 0))}`],
        );
        if (result.runs.every((run) => run.memory)) rows.push(memoryRow(result.runs));
        continue;
      }
      rows.push(
        [`cold pair, ${ep}`, `${seconds(first!.wallMs)} for the first adapter (base ${formatBytes(first!.bytesRead.base)} + aligned ${formatBytes(first!.bytesRead.aligned)} read over HTTP) → ${perMinute(first!.wallMs)} adapters/min`],
        [`warm pair, ${ep}`, `${seconds(mean)} per adapter, mean of ${warm.length} (runs: ${warm.map((run) => seconds(run.wallMs)).join(", ")}) → ${perMinute(mean)} adapters/min, ${(first!.wallMs / mean).toFixed(1)}× the cold figure`],
        [`  V from the warm pair`, `${fromWarm.join(", ")} of ${first!.modules} modules; base + aligned bytes read per warm adapter: ${warmBytes.join(", ")} (headers only: no tensor)`],
        [`  worker process`, `warm pairs hold ${result.warm.entries} modules, ${formatBytes(result.warm.bytes)}; peak RSS ${mib(result.maxRssBytes)}; ${(result.cpuMs / 1000).toFixed(1)} CPU-s in ${seconds(result.runs.reduce((sum, run) => sum + run.wallMs, 0))}`],
      );
      if (result.runs.every((run) => run.memory)) rows.push(memoryRow(result.runs));
    }
  } finally {
    await hub.close();
  }
  if (!gpuLoaded) rows.push(["GPU", "no GPU machine was available: no GPU figures"]);
  rows.push(["machine", `${availableParallelism()} cores; load average before ${loadBefore}, after ${loadavg().map((load) => load.toFixed(2)).join(" ")}`]);
}

mkdirSync(root, { recursive: true });
const width = Math.max(...rows.map(([label]) => label.length));
process.stdout.write(`${rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join("\n")}\n`);
