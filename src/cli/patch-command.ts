import { stat } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadEnv } from "../config/env.js";
import { SafeLoraError } from "../errors.js";
import { patchAdapter, type PatchedAdapter, type PatchProgress, type WeightsInput } from "../pipeline/patch-adapter.js";
import { variantFiles, writeVariant } from "../pipeline/variant-files.js";
import { ExecutionProviderChoice } from "../projection/execution-provider.js";
import { DEFAULT_SELECTION, formatSelection, parseSelection } from "../projection/selection.js";
import { LocalFolder } from "../storage/local-folder.js";
import type { CliIo } from "./io.js";
import { formatBytes, summaryTable } from "./summary.js";

export const PATCH_HELP = `Usage: safe-lora patch --adapter <dir> --base <dir> --aligned <dir> [options]

Patches a PEFT LoRA adapter with Safe LoRA and writes the patched variant, its report card, chart and
report JSON into --out.

  --adapter <dir>     PEFT adapter folder (adapter_config.json + adapter_model.safetensors)
  --subfolder <dir>   adapter folder inside --adapter, for repos that hold several adapters
  --base <dir>        the unaligned base model (transformers checkpoint as safetensors)
  --aligned <dir>     the aligned chat/instruct model of the same family
  --select <sel>      threshold:<τ> | top-k:<k> | fraction:<p>   (default ${formatSelection(DEFAULT_SELECTION)})
  --out <dir>         output folder (default ./<adapter folder name>-safe-lora); written atomically
  --force             replace --out if it exists and is not empty
  --ep <provider>     auto | cpu | cuda | webgpu   (default $SAFE_LORA_EP, else auto = cpu)
  --json              print the report JSON on stdout instead of the summary table
  -h, --help          show this help

Exit codes: 0 done, 2 usage error, 3 inputs cannot be patched, 4 execution provider unavailable, 1 bug.`;

async function localInput(flag: string, path: string, subfolder?: string): Promise<WeightsInput> {
  let isFolder = false;
  try {
    isFolder = (await stat(path)).isDirectory();
  } catch {
    // not on disk: treated below
  }
  if (!isFolder) {
    throw new SafeLoraError(
      `${flag} ${path}: no such folder. This version reads local folders only; reading Hub repos by id is not available yet`,
      "usage",
    );
  }
  return { files: new LocalFolder(path), revision: null, ...(subfolder ? { subfolder } : {}) };
}

/** Quotes an argument for a POSIX shell only when it needs it, so the reproduce command stays readable. */
function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

class ProgressLine {
  private lastPrinted = -1;
  private readonly started = performance.now();
  constructor(private readonly io: CliIo) {}

  update(progress: PatchProgress): void {
    const elapsed = ((performance.now() - this.started) / 1000).toFixed(1);
    const line = `[${String(progress.done).padStart(String(progress.total).length)}/${progress.total}] ${progress.module}  ${formatBytes(progress.bytesRead)} read, ${elapsed} s`;
    if (this.io.stderrIsTTY) {
      this.io.stderr(`\r\x1b[2K${line}${progress.done === progress.total ? "\n" : ""}`);
      return;
    }
    // Logs and CI: one line per tenth of the work, not one per module.
    const tenth = Math.floor((progress.done * 10) / progress.total);
    if (tenth !== this.lastPrinted) {
      this.lastPrinted = tenth;
      this.io.stderr(`${line}\n`);
    }
  }
}

export async function patchCommand(args: string[], io: CliIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        adapter: { type: "string" },
        subfolder: { type: "string" },
        base: { type: "string" },
        aligned: { type: "string" },
        select: { type: "string" },
        out: { type: "string" },
        force: { type: "boolean", default: false },
        ep: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    throw new SafeLoraError(`${(error as Error).message}; see safe-lora patch --help`, "usage");
  }
  if (values.help) {
    io.stdout(`${PATCH_HELP}\n`);
    return 0;
  }
  const missing = (["adapter", "base", "aligned"] as const).filter((flag) => !values[flag]);
  if (missing.length > 0) {
    throw new SafeLoraError(`missing ${missing.map((flag) => `--${flag}`).join(", ")}; see safe-lora patch --help`, "usage");
  }
  const env = loadEnv(io.env);
  const epParsed = ExecutionProviderChoice.safeParse(values.ep ?? env.SAFE_LORA_EP);
  if (!epParsed.success) {
    throw new SafeLoraError(`--ep ${values.ep}: choose one of ${ExecutionProviderChoice.options.join(", ")}`, "usage");
  }
  const selection = values.select ? parseSelection(values.select) : DEFAULT_SELECTION;
  const adapterPath = values.adapter!;
  const out = values.out ?? `${basename(resolve(adapterPath, values.subfolder ?? ""))}-safe-lora`;

  const adapter = await localInput("--adapter", adapterPath, values.subfolder);
  const base = await localInput("--base", values.base!);
  const aligned = await localInput("--aligned", values.aligned!);
  const progress = new ProgressLine(io);
  let patched: PatchedAdapter;
  try {
    patched = await patchAdapter({
      adapter,
      base,
      aligned,
      selection,
      executionProvider: epParsed.data,
      onProgress: (event) => progress.update(event),
    });
  } finally {
    await Promise.all([adapter.files.close(), base.files.close(), aligned.files.close()]);
  }

  const command = [
    "npx safe-lora patch",
    `--adapter ${shellQuote(adapterPath)}`,
    ...(values.subfolder ? [`--subfolder ${shellQuote(values.subfolder)}`] : []),
    `--base ${shellQuote(values.base!)}`,
    `--aligned ${shellQuote(values.aligned!)}`,
    `--select ${formatSelection(selection)}`,
  ].join(" ");
  // Local folders have no Hub id to put in the card's base_model, and no card licence is read yet.
  await writeVariant(out, variantFiles(patched, { alignedHubId: null, license: null, command }), { replace: values.force });

  if (values.json) io.stdout(`${JSON.stringify(patched.report, null, 2)}\n`);
  else io.stdout(`${summaryTable(patched.report)}\nwrote ${out}/\n`);
  return 0;
}
