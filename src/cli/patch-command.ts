import { cardLicense } from "../hub/card-data.js";
import { homedir } from "node:os";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { cliCacheDir, loadPatchEnv } from "../config/env.js";
import { SafeLoraError } from "../errors.js";
import { nonDefaultHubUrl, type HubAccess } from "../hub/hub-access.js";
import { findHubToken } from "../hub/token.js";
import { isFolder, openInputs, type OpenedInputs } from "../pipeline/open-inputs.js";
import { parseRepoRef } from "../hub/repo-ref.js";
import { patchAdapter, type PatchedAdapter, type PatchProgress } from "../pipeline/patch-adapter.js";
import { reproduceCommand } from "../report/reproduce-command.js";
import { AlignmentCache } from "../projection/alignment-cache.js";
import { finetuneVariantFiles, variantFiles, writeVariant, type VariantFile } from "../pipeline/variant-files.js";
import { DEFAULT_MAX_CPU_MODULE_ELEMENTS, patchFullFinetune, type PatchedFullFinetune } from "../pipeline/patch-full-finetune.js";
import type { FullFinetuneReport } from "../report/full-finetune-schema.js";
import type { ModelCardContext } from "../report/model-card.js";
import type { SafeLoraReport } from "../report/schema.js";
import type { WriteDirOptions } from "../storage/atomic-dir.js";
import { ExecutionProviderChoice } from "../projection/execution-provider.js";
import { DEFAULT_OPERATOR, parseOperator } from "../projection/operator.js";
import { DEFAULT_SELECTION, formatSelection, parseSelection, type Selection } from "../projection/selection.js";
import type { CliIo } from "./io.js";
import { formatBytes } from "../report/format-bytes.js";
import { isModelTreeChoice } from "../report/headline.js";
import { repoFolder } from "../storage/repo-files.js";
import { checkOutputFolder } from "./output-folder.js";
import { alternativesTable, selectionAlternatives } from "./dry-run.js";
import { majorityStderrLine, modelTreeStderrLine, summaryTable } from "./summary.js";

export const PATCH_HELP = `Usage: safe-lora patch --adapter <dir | org/name[@rev]> [--base …] [--aligned …] [options]
       safe-lora patch --finetune <dir | org/name[@rev]> [--base …] [--aligned …] [options]

Patches a PEFT LoRA adapter (or a full fine-tune) with Safe LoRA and writes the patched variant, its
report card, chart and report JSON into --out. Each of --adapter, --finetune, --base and --aligned is a
local folder (when that path exists) or a Hub repo id, read by range requests at one pinned commit.

  --adapter <loc>     PEFT adapter (adapter_config.json + adapter_model.safetensors)
  --finetune <loc>    instead of --adapter: a full fine-tune of the aligned model (config.json +
                      safetensors); writes its weights as sharded safetensors with an index. Paper
                      operator only; no alignment cache. On the CPU, modules above
                      --max-cpu-module-elements (default ${DEFAULT_MAX_CPU_MODULE_ELEMENTS} = 4096²) are refused:
                      an 8B model's MLP is a job for --ep cuda
  --max-cpu-module-elements <n>
                      with --finetune: the largest d_out·d_in a CPU run takes on
  --subfolder <dir>   the folder inside --adapter (or --finetune), for repos that hold several
  --aligned <loc>     the aligned chat/instruct model the adapter was trained on
                      (default: the adapter's base_model_name_or_path, else its card's base_model;
                      for --finetune, its card's base_model)
  --base <loc>        the unaligned base model of the same family
                      (default: the registry of known pairs, else the aligned model's card on the Hub)
  --hub-url <url>     the Hub to read from (default $HF_ENDPOINT, else https://huggingface.co);
                      the token comes from $HF_TOKEN or huggingface_hub's token file, never a flag
  --no-model-tree     never let a model card on the Hub choose the base model
  --no-cache          neither read nor fill the alignment cache ($SAFE_LORA_CACHE_DIR,
                      else $XDG_CACHE_HOME/safe-lora, else ~/.cache/safe-lora)
  --select <sel>      threshold:<τ> | top-k:<k> | fraction:<p>   (default ${formatSelection(DEFAULT_SELECTION)});
                      tau=<τ>, threshold=<τ>, top-k=<k>, fraction=<p> are the same
  --operator <op>     paper | subspace:<k> | subspace:<e>   (default paper: C = V Vᵀ / ‖V‖_F);
                      subspace projects onto V's top k left singular vectors (P = U_k U_kᵀ),
                      k by count, or the smallest k keeping the share 0 < e < 1 of ‖V‖_F²
  --dry-run           compute and print the cosines and what this and other selections would
                      project, reading the same bytes; write nothing (--out is not checked)
  --out <dir>         output folder (default ./<adapter folder name>-safe-lora); written atomically
  --force             replace --out if it exists and is not empty
  --ep <provider>     auto | cpu | cuda | webgpu   (default $SAFE_LORA_EP, else auto = cpu)
  --json              print the report JSON on stdout instead of the summary table
                      (with --dry-run: the report JSON that a run would write, plus dryRun)
  -h, --help          show this help

Exit codes: 0 done, 2 usage error, 3 inputs cannot be patched, 4 execution provider or Hub unavailable, 1 bug.`;

/** The Hub access of a command: URL from --hub-url or HF_ENDPOINT, token from the environment or token file. */
function hubAccess(hubUrl: string, env: NodeJS.ProcessEnv): HubAccess {
  const accessToken = findHubToken(env);
  if (accessToken && !accessToken.startsWith("hf_")) {
    throw new SafeLoraError("the Hub token (HF_TOKEN or the token file) does not look like a Hub token (hf_…); create one at <hub>/settings/tokens", "usage");
  }
  return { hubUrl, ...(accessToken ? { accessToken } : {}) };
}

/** `./<adapter folder name>-safe-lora`; a local path is taken whole (an "@" in it is no revision). */
async function defaultOut(adapter: string, subfolder: string, flag: string): Promise<string> {
  const name = (await isFolder(adapter)) ? adapter : parseRepoRef(adapter, flag).id;
  return `${basename(resolve(name, subfolder))}-safe-lora`;
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

function parsePatchArgs(args: string[]) {
  try {
    return parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        adapter: { type: "string" },
        finetune: { type: "string" },
        "max-cpu-module-elements": { type: "string" },
        subfolder: { type: "string" },
        base: { type: "string" },
        aligned: { type: "string" },
        "hub-url": { type: "string" },
        "no-model-tree": { type: "boolean", default: false },
        "no-cache": { type: "boolean", default: false },
        select: { type: "string" },
        operator: { type: "string" },
        out: { type: "string" },
        force: { type: "boolean", default: false },
        "dry-run": { type: "boolean", default: false },
        ep: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    throw new SafeLoraError(`${(error as Error).message}; see safe-lora patch --help`, "usage");
  }
}

type PatchArgs = ReturnType<typeof parsePatchArgs>["values"];

/** What both kinds of patch start from: the flags checked, --out checked, the inputs opened, a progress line. */
interface PreparedRun {
  readonly env: ReturnType<typeof loadPatchEnv>;
  readonly executionProvider: ExecutionProviderChoice;
  readonly selection: Selection;
  readonly out: string;
  /** The final write's options; null for a dry run, which writes nothing. */
  readonly writeOptions: WriteDirOptions | null;
  readonly inputs: OpenedInputs;
  readonly progress: ProgressLine;
}

async function prepareRun(values: PatchArgs, io: CliIo, what: { trained: "adapter" | "finetune"; spec: string }): Promise<PreparedRun> {
  // Refused before anything is opened: a subfolder with `..` (or a leading /) would read outside the adapter's repo.
  if (values.subfolder !== undefined) repoFolder(values.subfolder, "--subfolder");
  const env = loadPatchEnv(io.env);
  const epParsed = ExecutionProviderChoice.safeParse(values.ep ?? env.SAFE_LORA_EP);
  if (!epParsed.success) {
    throw new SafeLoraError(`--ep ${values.ep}: choose one of ${ExecutionProviderChoice.options.join(", ")}`, "usage");
  }
  const selection = values.select ? parseSelection(values.select) : DEFAULT_SELECTION;
  const flag = what.trained === "adapter" ? "--adapter" : "--finetune";
  const out = values.out ?? (await defaultOut(what.spec, values.subfolder ?? "", flag));
  const localInputs = [];
  const inputFolder = values.subfolder ? join(what.spec, values.subfolder) : what.spec;
  for (const spec of [inputFolder, values.base, values.aligned]) if (spec && (await isFolder(spec))) localInputs.push(spec);
  // Before any input is opened: a run that cannot write its result must not download first. A dry run writes nothing.
  const writeOptions = values["dry-run"] ? null : await checkOutputFolder(out, { force: values.force, protect: localInputs });
  const inputs = await openInputs({
    adapter: what.spec,
    trained: what.trained,
    ...(values.subfolder ? { subfolder: values.subfolder } : {}),
    ...(values.base ? { base: values.base } : {}),
    ...(values.aligned ? { aligned: values.aligned } : {}),
    access: hubAccess(values["hub-url"] ?? env.HF_ENDPOINT, io.env),
    allowModelTree: !values["no-model-tree"],
  });
  return { env, executionProvider: epParsed.data, selection, out, writeOptions, inputs, progress: new ProgressLine(io) };
}

export async function patchCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parsePatchArgs(args);
  if (values.help) {
    io.stdout(`${PATCH_HELP}\n`);
    return 0;
  }
  if (values.adapter !== undefined && values.finetune !== undefined) {
    throw new SafeLoraError("--adapter and --finetune name what to patch: pass one of them, not both; see safe-lora patch --help", "usage");
  }
  if (values.finetune === undefined && values["max-cpu-module-elements"] !== undefined) {
    throw new SafeLoraError("--max-cpu-module-elements is for full fine-tunes: use it with --finetune", "usage");
  }
  const trained = values.finetune !== undefined ? "finetune" : "adapter";
  const spec = values.finetune ?? values.adapter;
  if (!spec) throw new SafeLoraError("missing --adapter (or --finetune for a full fine-tune); see safe-lora patch --help", "usage");
  const operator = values.operator ? parseOperator(values.operator) : DEFAULT_OPERATOR;
  if (trained === "finetune" && operator.kind !== "paper") {
    throw new SafeLoraError(`--operator ${values.operator}: full fine-tunes are patched with the paper's operator only; leave out --operator`, "usage");
  }
  const maxCpuModuleElements = parseMaxCpuModuleElements(values["max-cpu-module-elements"]);
  const run = await prepareRun(values, io, { trained, spec });
  if (trained === "finetune") return patchFinetune(run, values, io, maxCpuModuleElements);
  const { env, executionProvider, selection, inputs, progress } = run;
  const cache = values["no-cache"] ? null : new AlignmentCache(cliCacheDir(env, io.env.HOME || homedir()), env.SAFE_LORA_CACHE_GB * 1e9);
  let patched: PatchedAdapter;
  try {
    patched = await patchAdapter({
      adapter: inputs.adapter,
      base: inputs.base,
      aligned: inputs.aligned,
      selection,
      operator,
      executionProvider,
      cache,
      onProgress: (event) => progress.update(event),
    });
  } finally {
    await inputs.close();
  }

  return finish(run, values, io, { report: patched.report, files: (card) => variantFiles(patched, card), release: () => patched.release() });
}

/** A patched variant of either kind, staged: its report, its files once the card's context is known. */
interface PatchResult {
  readonly report: SafeLoraReport | FullFinetuneReport;
  files(card: ModelCardContext): VariantFile[];
  release(): Promise<void>;
}

/** The warnings, then the dry run's preview or the variant written to --out, and the summary (or the report JSON). */
async function finish(run: PreparedRun, values: PatchArgs, io: CliIo, result: PatchResult): Promise<number> {
  const { env, selection, out, writeOptions, inputs } = run;
  const { report } = result;
  // Warnings go to stderr, so that they are seen with --json too and never end up in a parsed stdout.
  const selectionText = formatSelection(selection);
  for (const warning of [majorityStderrLine(report, selectionText, { dryRun: writeOptions === null }), ...(["base", "aligned"] as const).filter((role) => isModelTreeChoice(report.inputs[role])).map((role) => modelTreeStderrLine(report, role))]) {
    if (warning) io.stderr(`safe-lora: warning: ${warning}\n`);
  }
  if (writeOptions === null) {
    await result.release();
    const preview = { ...report, dryRun: { alternatives: selectionAlternatives(report, selection) } };
    if (values.json) io.stdout(`${JSON.stringify(preview, null, 2)}\n`);
    else {
      io.stdout(`${summaryTable(report, { dryRun: true })}\n\nWhat each selection would project on these cosines:\n\n${alternativesTable(preview.dryRun.alternatives, report.moduleCount)}\n`);
      io.stdout(`\ndry run: nothing written; without --dry-run this writes ${out}/\n`);
    }
    return 0;
  }
  const command = reproduceCommand(report, values.subfolder ?? "", { hubUrl: nonDefaultHubUrl(values["hub-url"] ?? env.HF_ENDPOINT) });
  // A local aligned folder has no Hub id for the card's base_model; the licence is the input card's.
  const alignedHubId = inputs.aligned.revision ? (inputs.aligned.location ?? null) : null;
  await writeVariant(out, result.files({ alignedHubId, license: cardLicense(inputs.adapterCard), command }), writeOptions).finally(() => result.release());

  if (values.json) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
  else io.stdout(`${summaryTable(report)}\nwrote ${out}/\n`);
  return 0;
}

function parseMaxCpuModuleElements(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new SafeLoraError(`--max-cpu-module-elements ${text}: give a whole number of values (d_out·d_in), e.g. ${DEFAULT_MAX_CPU_MODULE_ELEMENTS}`, "usage");
  }
  return value;
}

/** `--finetune`: the full fine-tune patched module by module, its variant a sharded checkpoint. */
async function patchFinetune(run: PreparedRun, values: PatchArgs, io: CliIo, maxCpuModuleElements: number | undefined): Promise<number> {
  const { inputs, progress } = run;
  let patched: PatchedFullFinetune;
  try {
    patched = await patchFullFinetune({
      finetuned: inputs.adapter,
      base: inputs.base,
      aligned: inputs.aligned,
      selection: run.selection,
      executionProvider: run.executionProvider,
      ...(maxCpuModuleElements !== undefined ? { limits: { maxCpuModuleElements } } : {}),
      onProgress: (event) => progress.update(event),
    });
  } finally {
    await inputs.close();
  }
  return finish(run, values, io, { report: patched.report, files: (card) => finetuneVariantFiles(patched, card), release: () => patched.release() });
}
