// Time per module of a full fine-tune patched by patchFullFinetune, at Llama-3-8B's module shapes (issue 13, must
// show 3: a GPU worker's time per module next to the CPU's). Writes a base, an aligned model and a full fine-tune of
// it (bench/full-finetune-family.ts) in a temporary folder, patches the fine-tune on the chosen execution provider,
// and prints module, shape and seconds per target; --out writes the same as JSON. The folder is removed at the end.
//
//   npx tsx bench/full-finetune-modules.ts [--ep cpu|cuda|webgpu|auto] [--layers N] [--dtype bf16|f32] [--select threshold:0.6] [--out <json>]
//
// bench/gpu-full-finetune.sh runs it on the GPU machine. Exit status 3: the provider asked for did not load.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ADAPTABLE_LINEARS } from "../src/llama/llama-weights.js";
import { patchFullFinetune } from "../src/pipeline/patch-full-finetune.js";
import { ExecutionProviderChoice } from "../src/projection/execution-provider.js";
import { FullDeltaSession } from "../src/projection/full-delta-session.js";
import { ProviderUnavailable } from "../src/projection/provider-loading.js";
import { formatSelection, parseSelection } from "../src/projection/selection.js";
import { LocalFolder } from "../src/storage/local-folder.js";
import { llama3Shape, writeFullFinetuneFamily, type FamilyDtype } from "./full-finetune-family.js";

const { values: args } = parseArgs({
  options: {
    ep: { type: "string", default: "cpu" },
    layers: { type: "string", default: "1" },
    dtype: { type: "string", default: "bf16" },
    select: { type: "string", default: "threshold:0.6" },
    out: { type: "string" },
  },
});
const executionProvider = ExecutionProviderChoice.parse(args.ep);
const layers = Number(args.layers);
if (!Number.isInteger(layers) || layers < 1) throw new Error(`--layers takes a whole number ≥ 1, not ${args.layers}`);
const dtypes: Record<string, FamilyDtype> = { bf16: "BF16", f32: "F32" };
const dtype = dtypes[args.dtype.toLowerCase()];
if (!dtype) throw new Error(`--dtype takes bf16 or f32, not ${args.dtype}`);
const selection = parseSelection(args.select);
const shape = llama3Shape(layers);
// The CPU refuses modules above 4096 × 4096 by default (hours on a small CPU); here the MLP's 14336 × 4096 is the point.
const maxCpuModuleElements = shape.intermediate * shape.hidden;

/** The GPU's name from nvidia-smi, or null where there is none (no driver, no GPU, not NVIDIA). */
function gpuName(): string | null {
  try {
    const names = execFileSync("nvidia-smi", ["--query-gpu=name", "--format=csv,noheader"], { encoding: "utf8", timeout: 10_000, stdio: ["ignore", "pipe", "ignore"] });
    return names.trim().split("\n").join(", ") || null;
  } catch {
    return null;
  }
}

/** q, k, v, o, gate, up, down: the order a decoder layer uses them, for the table (the run takes them by name). */
const TARGET_ORDER: readonly string[] = ADAPTABLE_LINEARS.map((linear) => linear.split(".")[1]!);
const seconds = (ms: number) => Number((ms / 1000).toFixed(3));
const machine = { cpu: cpus()[0]?.model.trim() ?? "unknown", cores: cpus().length, memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)), gpu: gpuName() };
/** The 1-minute load average: other work on the cores shows in the CPU's figures. */
const load = () => Number(loadavg()[0]!.toFixed(2));

const root = mkdtempSync(join(tmpdir(), "full-finetune-modules-"));
const removeRoot = () => rmSync(root, { recursive: true, force: true });
for (const [signal, status] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  process.once(signal, () => {
    removeRoot();
    process.exit(status);
  });
}
const opened: LocalFolder[] = [];
const folder = (path: string) => {
  const files = new LocalFolder(path);
  opened.push(files);
  return files;
};

try {
  // Fails at once, before gigabytes are written, when the provider asked for does not load; its open time is
  // reported, as the first module's time includes the run's own session opening.
  const sessionStarted = performance.now();
  const probe = await FullDeltaSession.open(executionProvider).catch((error: unknown) => {
    if (!(error instanceof ProviderUnavailable)) throw error;
    console.error(`${executionProvider} execution provider not available on this machine: ${error.message}`);
    process.exitCode = 3;
    return null;
  });
  if (probe) {
    const sessionOpenMs = performance.now() - sessionStarted;
    await probe.session.release();

    const writeStarted = performance.now();
    process.stderr.write(`writing base, aligned and fine-tuned checkpoints (${layers} layer(s), ${dtype}) in ${root}…\n`);
    const { folders, bytes } = await writeFullFinetuneFamily(root, shape, dtype);
    const writeMs = performance.now() - writeStarted;

    const loadBefore = load();
    const completions: Array<{ module: string; at: number }> = [];
    const started = performance.now();
    const patched = await patchFullFinetune({
      finetuned: { files: folder(folders.finetuned), revision: null },
      base: { files: folder(folders.base), revision: null },
      aligned: { files: folder(folders.aligned), revision: null },
      selection,
      executionProvider,
      limits: { maxCpuModuleElements },
      stagingParent: root,
      onProgress: ({ module, done, total }) => {
        completions.push({ module, at: performance.now() });
        process.stderr.write(`  ${done}/${total} ${module}\n`);
      },
    });
    const totalMs = performance.now() - started;
    await patched.release();
    const { report } = patched;

    const byName = new Map(report.modules.map((module) => [module.name, module]));
    const modules = completions.map(({ module, at }, index) => {
      const figures = byName.get(module)!;
      return {
        module,
        layer: figures.layer,
        target: figures.target,
        shape: figures.shape,
        seconds: seconds(at - (index === 0 ? started : completions[index - 1]!.at)),
        cosine: figures.cosine,
        projected: figures.projected,
      };
    });
    modules.sort((a, b) => (a.layer ?? 0) - (b.layer ?? 0) || TARGET_ORDER.indexOf(a.target) - TARGET_ORDER.indexOf(b.target));
    const targets = [...new Set(modules.map((module) => module.target))];
    const perTarget = targets.map((target) => {
      const of = modules.filter((module) => module.target === target);
      return { target, shape: of[0]!.shape, modules: of.length, meanSeconds: seconds((1000 * of.reduce((sum, module) => sum + module.seconds, 0)) / of.length) };
    });
    const result = {
      bench: "full-finetune-modules",
      machine: { ...machine, loadBefore, loadAfter: load() },
      requestedProvider: executionProvider,
      executionProvider: report.operator.executionProvider,
      providerFallbacks: report.operator.providerFallbacks ?? [],
      dtype,
      layers,
      shape,
      notes: [
        `Llama-3-8B module shapes, ${layers} decoder layer(s); vocabulary ${shape.vocab} instead of 128256 (embeddings and lm_head are no target), to save disk`,
        `limits.maxCpuModuleElements raised to ${maxCpuModuleElements} (${shape.intermediate} × ${shape.hidden}) so that a CPU run takes the MLP modules`,
        "a module's seconds: from the previous module's completion (the first: from the call, so it includes opening the checkpoints and the run's onnxruntime sessions and reading its weights); the next module's reads overlap it",
      ],
      selection: formatSelection(selection),
      projected: `${report.projectedCount}/${report.moduleCount}`,
      checkpointBytes: bytes,
      writeSeconds: seconds(writeMs),
      sessionOpenSeconds: seconds(sessionOpenMs),
      modules,
      perTarget,
      moduleSeconds: seconds(completions.at(-1)!.at - started),
      assembleSeconds: seconds(started + totalMs - completions.at(-1)!.at),
      totalSeconds: seconds(totalMs),
    };

    const header = ["module", "shape", "seconds", "cosine", "projected"];
    const rows = modules.map((module) => [module.module, module.shape.join(" × "), module.seconds.toFixed(2), module.cosine === null ? "n/a" : module.cosine.toFixed(5), module.projected ? "yes" : "no"]);
    const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
    const line = (cells: readonly string[]) => `| ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join(" | ")} |`;
    console.log([line(header), `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`, ...rows.map(line)].join("\n"));
    if (layers > 1) for (const { target, shape: dims, modules: count, meanSeconds } of perTarget) console.log(`${target} ${dims.join(" × ")}: ${meanSeconds.toFixed(2)} s mean over ${count} layers`);
    console.log(
      `\nprovider ${result.executionProvider} (asked: ${executionProvider}); ${machine.cpu}, ${machine.cores} cores (load ${loadBefore} before, ${result.machine.loadAfter} after)${machine.gpu ? `, GPU ${machine.gpu}` : ", no NVIDIA GPU"}\n` +
        `modules ${result.moduleSeconds.toFixed(2)} s, then writing the variant's shards ${result.assembleSeconds.toFixed(2)} s: total ${result.totalSeconds.toFixed(2)} s; ` +
        `${result.projected} projected at ${result.selection}; session open alone ${result.sessionOpenSeconds.toFixed(2)} s; ` +
        `checkpoints (${(bytes / 1e9).toFixed(2)} GB, ${dtype}) written in ${result.writeSeconds.toFixed(1)} s\n` +
        result.notes.map((note) => `note: ${note}`).join("\n"),
    );
    if (args.out) writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
  }
} finally {
  await Promise.all(opened.map((files) => files.close()));
  removeRoot();
}
