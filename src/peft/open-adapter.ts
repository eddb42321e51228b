import { SafeLoraError } from "../errors.js";
import { isFloatDtype } from "../safetensors/dtype.js";
import { SafetensorsFile } from "../safetensors/safetensors-file.js";
import { inSubfolder, REPO_ROOT, repoFolder, type RepoFiles } from "../storage/repo-files.js";
import { parseAdapterTensors, type LoraModule } from "./lora-modules.js";
import { AdapterConfig } from "./schema.js";

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";
const PICKLE_WEIGHTS = "adapter_model.bin";

/** A LoRA adapter opened for patching: its config (parsed and as written), its weights file and its modules. */
export interface OpenedAdapter {
  readonly files: RepoFiles;
  readonly subfolder: string;
  readonly config: AdapterConfig;
  /** The config exactly as stored, so the patched copy can keep it byte for byte. */
  readonly configText: string;
  readonly weights: SafetensorsFile;
  readonly modules: readonly LoraModule[];
  readonly untouched: readonly string[];
}

function describeIssue(error: { issues: ReadonlyArray<{ path: PropertyKey[]; message: string }> }): string {
  const issue = error.issues[0];
  if (!issue) return "it does not match PEFT's format";
  return `${issue.path.map(String).join(".") || "(root)"}: ${issue.message}`;
}

/**
 * Opens a PEFT LoRA adapter and refuses, with the reason, what Safe LoRA cannot patch faithfully:
 * other PEFT methods, DoRA, fan_in_fan_out layers, embedding adapters and pickled weights.
 */
export async function openAdapter(files: RepoFiles, requestedFolder = ""): Promise<OpenedAdapter> {
  const subfolder = repoFolder(requestedFolder, "the adapter folder");
  const at = (name: string) => inSubfolder(subfolder, name);
  const where = subfolder === REPO_ROOT ? files.description : `${files.description}/${subfolder}`;
  if (!(await files.exists(at(ADAPTER_CONFIG)))) {
    throw new SafeLoraError(`${where} has no ${ADAPTER_CONFIG}: point --adapter at a folder saved by PEFT's save_pretrained`, "missing-file");
  }
  const configText = await files.readText(at(ADAPTER_CONFIG));
  let json: unknown;
  try {
    json = JSON.parse(configText);
  } catch (error) {
    throw new SafeLoraError(`${where}/${ADAPTER_CONFIG} is not JSON (${(error as Error).message})`, "invalid-adapter-config", { cause: error });
  }
  const parsed = AdapterConfig.safeParse(json);
  if (!parsed.success) {
    throw new SafeLoraError(`${where}/${ADAPTER_CONFIG} is not a valid PEFT config: ${describeIssue(parsed.error)}`, "invalid-adapter-config");
  }
  const config = parsed.data;
  if (config.peft_type !== "LORA") {
    throw new SafeLoraError(`${where} is a ${config.peft_type} adapter; Safe LoRA patches LoRA adapters only (peft_type "LORA")`, "unsupported-adapter");
  }
  if (config.use_dora) {
    throw new SafeLoraError(
      `${where} is a DoRA adapter (use_dora: true): DoRA rescales weights by a learned magnitude that Safe LoRA's projection does not account for`,
      "unsupported-adapter",
    );
  }
  if (config.fan_in_fan_out) {
    throw new SafeLoraError(
      `${where} was trained with fan_in_fan_out: true (GPT-2-style Conv1D layers store weights transposed); such adapters are not supported yet`,
      "unsupported-adapter",
    );
  }
  if (!(await files.exists(at(ADAPTER_WEIGHTS)))) {
    if (await files.exists(at(PICKLE_WEIGHTS))) {
      throw new SafeLoraError(
        `${where} has its weights only as ${PICKLE_WEIGHTS}, a pickle that can run code when loaded, so it is never opened; ` +
          "re-save the adapter with PEFT's save_pretrained(safe_serialization=True) to get adapter_model.safetensors",
        "pickle-refused",
      );
    }
    throw new SafeLoraError(`${where} has ${ADAPTER_CONFIG} but no ${ADAPTER_WEIGHTS}`, "missing-file");
  }

  const weights = await SafetensorsFile.open(await files.openBytes(at(ADAPTER_WEIGHTS)));
  const { modules, untouched } = parseAdapterTensors(weights.header.tensors.keys(), where);
  if (modules.length === 0) {
    throw new SafeLoraError(`${where}/${ADAPTER_WEIGHTS} holds no lora_A/lora_B weight pairs; there is nothing to patch`, "unsupported-adapter");
  }
  for (const module of modules) {
    const a = weights.info(module.loraAKey);
    const b = weights.info(module.loraBKey);
    for (const factor of [a, b]) {
      if (!isFloatDtype(factor.dtype)) {
        throw new SafeLoraError(`${where}: "${factor.name}" is stored as ${factor.dtype}; LoRA factors must be F32, F16, BF16 or F64`, "unsupported-dtype");
      }
      if (factor.shape.length !== 2) {
        throw new SafeLoraError(
          `${where}: "${factor.name}" has shape [${factor.shape}]; only linear-layer LoRA (2-D factors) can be patched, not convolution adapters`,
          "unsupported-adapter",
        );
      }
    }
    if (a.shape[0] !== b.shape[1]) {
      throw new SafeLoraError(
        `${where}: module "${module.name}" has lora_A [${a.shape}] and lora_B [${b.shape}], whose ranks differ`,
        "shape-mismatch",
      );
    }
  }
  return { files, subfolder, config, configText, weights, modules, untouched };
}
