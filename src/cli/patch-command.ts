import { cardLicense } from "../hub/card-data.js";
import { homedir } from "node:os";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { cliCacheDir, loadPatchEnv } from "../config/env.js";
import { SafeLoraError } from "../errors.js";
import { nonDefaultHubUrl, type HubAccess } from "../hub/hub-access.js";
import { findHubToken } from "../hub/token.js";
import { isFolder, openInputs } from "../pipeline/open-inputs.js";
import { parseRepoRef } from "../hub/repo-ref.js";
import { patchAdapter, type PatchedAdapter, type PatchProgress } from "../pipeline/patch-adapter.js";
import { reproduceCommand } from "../report/reproduce-command.js";
import { AlignmentCache } from "../projection/alignment-cache.js";
import { variantFiles, writeVariant } from "../pipeline/variant-files.js";
import { ExecutionProviderChoice } from "../projection/execution-provider.js";
import { DEFAULT_OPERATOR, parseOperator } from "../projection/operator.js";
import { DEFAULT_SELECTION, formatSelection, parseSelection } from "../projection/selection.js";
import type { CliIo } from "./io.js";
import { formatBytes } from "../report/format-bytes.js";
import { isModelTreeChoice } from "../report/headline.js";
import { repoFolder } from "../storage/repo-files.js";
import { checkOutputFolder } from "./output-folder.js";
import { alternativesTable, selectionAlternatives } from "./dry-run.js";
import { majorityStderrLine, modelTreeStderrLine, summaryTable } from "./summary.js";

export const PATCH_HELP = `Usage: safe-lora patch --adapter <dir | org/name[@rev]> [--base …] [--aligned …] [options]

Patches a PEFT LoRA adapter with Safe LoRA and writes the patched variant, its report card, chart and
report JSON into --out. Each of --adapter, --base and --aligned is a local folder (when that path exists)
or a Hub repo id, read by range requests at one pinned commit.

  --adapter <loc>     PEFT adapter (adapter_config.json + adapter_model.safetensors)
  --subfolder <dir>   adapter folder inside --adapter, for repos that hold several adapters
  --aligned <loc>     the aligned chat/instruct model the adapter was trained on
                      (default: the adapter's base_model_name_or_path, else its card's base_model)
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
async function defaultOut(adapter: string, subfolder: string): Promise<string> {
  const name = (await isFolder(adapter)) ? adapter : parseRepoRef(adapter, "--adapter").id;
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
    }));
  } catch (error) {
    throw new SafeLoraError(`${(error as Error).message}; see safe-lora patch --help`, "usage");
  }
  if (values.help) {
    io.stdout(`${PATCH_HELP}\n`);
    return 0;
  }
  if (!values.adapter) throw new SafeLoraError("missing --adapter; see safe-lora patch --help", "usage");
  // Refused before anything is opened: a subfolder with `..` (or a leading /) would read outside the adapter's repo.
  if (values.subfolder !== undefined) repoFolder(values.subfolder, "--subfolder");
  const env = loadPatchEnv(io.env);
  const epParsed = ExecutionProviderChoice.safeParse(values.ep ?? env.SAFE_LORA_EP);
  if (!epParsed.success) {
    throw new SafeLoraError(`--ep ${values.ep}: choose one of ${ExecutionProviderChoice.options.join(", ")}`, "usage");
  }
  const selection = values.select ? parseSelection(values.select) : DEFAULT_SELECTION;
  const operator = values.operator ? parseOperator(values.operator) : DEFAULT_OPERATOR;
  const adapterSpec = values.adapter;
  const out = values.out ?? (await defaultOut(adapterSpec, values.subfolder ?? ""));
  const localInputs = [];
  const adapterFolder = values.subfolder ? join(adapterSpec, values.subfolder) : adapterSpec;
  for (const spec of [adapterFolder, values.base, values.aligned]) if (spec && (await isFolder(spec))) localInputs.push(spec);
  const dryRun = values["dry-run"];
  // Before any input is opened: a run that cannot write its result must not download first. A dry run writes nothing.
  const writeOptions = dryRun ? null : await checkOutputFolder(out, { force: values.force, protect: localInputs });
  const inputs = await openInputs({
    adapter: adapterSpec,
    ...(values.subfolder ? { subfolder: values.subfolder } : {}),
    ...(values.base ? { base: values.base } : {}),
    ...(values.aligned ? { aligned: values.aligned } : {}),
    access: hubAccess(values["hub-url"] ?? env.HF_ENDPOINT, io.env),
    allowModelTree: !values["no-model-tree"],
  });
  const cache = values["no-cache"] ? null : new AlignmentCache(cliCacheDir(env, io.env.HOME || homedir()), env.SAFE_LORA_CACHE_GB * 1e9);
  const progress = new ProgressLine(io);
  let patched: PatchedAdapter;
  try {
    patched = await patchAdapter({
      adapter: inputs.adapter,
      base: inputs.base,
      aligned: inputs.aligned,
      selection,
      operator,
      executionProvider: epParsed.data,
      cache,
      onProgress: (event) => progress.update(event),
    });
  } finally {
    await inputs.close();
  }

  // Warnings go to stderr, so that they are seen with --json too and never end up in a parsed stdout.
  const selectionText = formatSelection(selection);
  for (const warning of [majorityStderrLine(patched.report, selectionText, { dryRun: writeOptions === null }), ...(["base", "aligned"] as const).filter((role) => isModelTreeChoice(patched.report.inputs[role])).map((role) => modelTreeStderrLine(patched.report, role))]) {
    if (warning) io.stderr(`safe-lora: warning: ${warning}\n`);
  }
  if (writeOptions === null) {
    await patched.release();
    const report = { ...patched.report, dryRun: { alternatives: selectionAlternatives(patched.report, selection) } };
    if (values.json) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
    else {
      io.stdout(`${summaryTable(report, { dryRun: true })}\n\nWhat each selection would project on these cosines:\n\n${alternativesTable(report.dryRun.alternatives, report.moduleCount)}\n`);
      io.stdout(`\ndry run: nothing written; without --dry-run this writes ${out}/\n`);
    }
    return 0;
  }
  const command = reproduceCommand(patched.report, values.subfolder ?? "", { hubUrl: nonDefaultHubUrl(values["hub-url"] ?? env.HF_ENDPOINT) });
  // A local aligned folder has no Hub id for the card's base_model; the licence is the adapter card's.
  const alignedHubId = inputs.aligned.revision ? (inputs.aligned.location ?? null) : null;
  await writeVariant(out, variantFiles(patched, { alignedHubId, license: cardLicense(inputs.adapterCard), command }), writeOptions).finally(() => patched.release());

  if (values.json) io.stdout(`${JSON.stringify(patched.report, null, 2)}\n`);
  else io.stdout(`${summaryTable(patched.report)}\nwrote ${out}/\n`);
  return 0;
}
