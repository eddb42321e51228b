import { stat } from "node:fs/promises";
import { SafeLoraError } from "../errors.js";
import { parseCardData } from "../hub/card-data.js";
import type { HubAccess } from "../hub/hub-access.js";
import { fetchModelInfo, HubRepoFiles } from "../hub/hub-repo-files.js";
import { parseRepoRef } from "../hub/repo-ref.js";
import { resolveAligned, resolveBase } from "../hub/resolve-pair.js";
import { ADAPTER_CONFIG } from "../peft/open-adapter.js";
import { AdapterConfig } from "../peft/schema.js";
import { LocalFolder } from "../storage/local-folder.js";
import { inSubfolder, type RepoFiles } from "../storage/repo-files.js";
import type { WeightsInput } from "./patch-adapter.js";

export interface InputsRequest {
  /** A local folder, or a Hub id `org/name[@rev]` (an existing path is a folder), or files already opened. */
  readonly adapter: string | RepoFiles;
  /**
   * What `adapter` holds: a PEFT adapter (the default), or a full fine-tune of the aligned model (config.json and
   * safetensors), whose aligned model only its card's `base_model` names.
   */
  readonly trained?: "adapter" | "finetune";
  readonly subfolder?: string;
  readonly base?: string;
  readonly aligned?: string;
  readonly access: HubAccess;
  /** May the aligned model's Hub card choose the base (rule 3)? On for the CLI, off by default for the bot. */
  readonly allowModelTree: boolean;
  /**
   * Asked before any request about a base or aligned model on the Hub (its info, its files); rejects when
   * that model may not be read for this adapter (the bot's trust rules). Absent: everything may be read.
   */
  readonly mayRead?: (id: string) => Promise<void>;
  /**
   * Every string is a Hub id, never a local path. The bot sets it: its inputs come from repos' files, and a
   * folder on the bot's own disk (`pair: {base: ../..}`) is nobody's to name — nor would `mayRead` see it.
   */
  readonly hubOnly?: boolean;
}

export interface OpenedInputs {
  readonly adapter: WeightsInput;
  /** The adapter card's front matter, when it has one (for the variant card's licence). */
  readonly adapterCard: Record<string, unknown> | null;
  readonly base: WeightsInput;
  readonly aligned: WeightsInput;
  /** Runs `cleanup` when the inputs are closed: e.g. a patched variant's `release`, once it is committed. */
  onClose(cleanup: () => Promise<void>): void;
  /** Closes the inputs' files, then runs what `onClose` registered. */
  close(): Promise<void>;
}

/** Whether `path` names an existing local folder: such a value is never read as a Hub id. */
export async function isFolder(path: string): Promise<boolean> {
  return stat(path).then(
    (info) => info.isDirectory(),
    () => false,
  );
}

async function openLocation(value: string, flag: string, request: Pick<InputsRequest, "access" | "hubOnly">): Promise<RepoFiles> {
  const { access } = request;
  if (!request.hubOnly && (await isFolder(value))) return new LocalFolder(value);
  try {
    return await HubRepoFiles.open(access, parseRepoRef(value, flag));
  } catch (error) {
    // Offline, "runs/lora" mistyped reads as a Hub id: say so, or the user hunts for a network problem only.
    if (error instanceof SafeLoraError && error.code === "hub-unavailable") {
      throw new SafeLoraError(`${flag} ${value} is not an existing folder, so it was taken for a Hub repo id, and ${error.message}`, "hub-unavailable", { cause: error });
    }
    throw error;
  }
}

const revisionOf = (files: RepoFiles) => (files instanceof HubRepoFiles ? files.sha : null);
const locationOf = (files: RepoFiles) => (files instanceof HubRepoFiles ? files.id : files.description);

async function readCard(files: RepoFiles, subfolder: string): Promise<Record<string, unknown> | null> {
  const path = inSubfolder(subfolder, "README.md");
  return (await files.exists(path)) ? parseCardData(await files.readText(path)) : null;
}

/** The architecture a model declares: from the Hub's model info, or a local config.json. */
async function architectureOf(files: RepoFiles): Promise<string | null> {
  let config: unknown;
  if (files instanceof HubRepoFiles) config = files.info.config;
  else if (await files.exists("config.json")) {
    try {
      config = JSON.parse(await files.readText("config.json"));
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      throw new SafeLoraError(`${files.description}/config.json is not JSON (${error.message}); point --base and --aligned at model folders saved by transformers`, "invalid-model-config");
    }
  }
  const { architectures, model_type } = (config ?? {}) as { architectures?: unknown; model_type?: unknown };
  if (Array.isArray(architectures) && typeof architectures[0] === "string") return architectures[0];
  return typeof model_type === "string" ? model_type : null;
}

/**
 * Opens the adapter and the base/aligned pair wherever they are (local folders or Hub repos pinned to a
 * commit), working out the pair when it is not given (README, "Finding the base/aligned pair") and checking that the two models
 * declare the same architecture. Shapes and the distance between the two are checked while patching.
 */
export async function openInputs(request: InputsRequest): Promise<OpenedInputs> {
  const opened: RepoFiles[] = [];
  const track = <T extends RepoFiles>(files: T): T => {
    opened.push(files);
    return files;
  };
  const cleanups: Array<() => Promise<void>> = [];
  const close = async () => {
    try {
      await Promise.all(opened.map((files) => files.close()));
    } finally {
      // Even when a file fails to close: a staged variant must not outlive its run.
      await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
    }
  };
  try {
    const subfolder = request.subfolder ?? "";
    const trained = request.trained ?? "adapter";
    const adapterFlag = trained === "adapter" ? "--adapter" : "--finetune";
    const adapterFiles = typeof request.adapter === "string" ? track(await openLocation(request.adapter, adapterFlag, request)) : request.adapter;
    const adapterCard = await readCard(adapterFiles, subfolder);
    const localFolder = async (value: string | undefined) => (value && !request.hubOnly && (await isFolder(value)) ? track(new LocalFolder(value)) : null);
    const explicitBase = await localFolder(request.base);
    const explicitAligned = await localFolder(request.aligned);

    const alignedRef = request.aligned && !explicitAligned ? parseRepoRef(request.aligned, "--aligned") : undefined;
    const baseRef = request.base && !explicitBase ? parseRepoRef(request.base, "--base") : undefined;
    let alignedChoice = { id: "", resolvedBy: "explicit" };
    let baseChoice = { id: "", resolvedBy: "explicit" };
    if (explicitAligned && !request.base) {
      throw new SafeLoraError("--aligned is a local folder, so its base cannot be looked up: pass --base as well", "usage");
    }
    if (!explicitAligned || !explicitBase) {
      let adapterBase: string | null | undefined;
      const configPath = inSubfolder(subfolder, ADAPTER_CONFIG);
      if (trained === "adapter" && !alignedRef && !explicitAligned && (await adapterFiles.exists(configPath))) {
        try {
          adapterBase = AdapterConfig.safeParse(JSON.parse(await adapterFiles.readText(configPath))).data?.base_model_name_or_path;
        } catch {
          // An unreadable config is reported, with its reason, when the adapter is opened.
        }
      }
      const query = {
        adapterBase,
        adapterCard,
        trained,
        ...(alignedRef ? { explicitAligned: alignedRef.id } : {}),
        ...(baseRef ? { explicitBase: baseRef.id } : {}),
        allowModelTree: request.allowModelTree,
        lookup: async (id: string) => {
          await request.mayRead?.(id);
          return fetchModelInfo(request.access, { id, revision: "main" });
        },
      };
      // Explicit Hub ids go through the same functions, which check that they are not quantized copies.
      if (!explicitAligned) alignedChoice = await resolveAligned(query);
      if (!explicitBase) baseChoice = await resolveBase(query, alignedChoice.id);
    }
    const openModel = async (ref: { id: string; revision: string }) => {
      await request.mayRead?.(ref.id);
      return track(await HubRepoFiles.open(request.access, ref));
    };
    const alignedFiles = explicitAligned ?? (await openModel({ id: alignedChoice.id, revision: alignedRef?.revision ?? "main" }));
    const baseFiles = explicitBase ?? (await openModel({ id: baseChoice.id, revision: baseRef?.revision ?? "main" }));
    const base: WeightsInput = { files: baseFiles, location: locationOf(baseFiles), revision: revisionOf(baseFiles), resolvedBy: baseChoice.resolvedBy };
    const aligned: WeightsInput = { files: alignedFiles, location: locationOf(alignedFiles), revision: revisionOf(alignedFiles), resolvedBy: alignedChoice.resolvedBy };

    const [baseArchitecture, alignedArchitecture] = await Promise.all([architectureOf(base.files), architectureOf(aligned.files)]);
    if (baseArchitecture && alignedArchitecture && baseArchitecture !== alignedArchitecture) {
      throw new SafeLoraError(
        `${base.files.description} is a ${baseArchitecture} but ${aligned.files.description} is a ${alignedArchitecture}: not a base/aligned pair of one model family`,
        "not-a-pair",
      );
    }
    return {
      adapterCard,
      adapter: { files: adapterFiles, location: locationOf(adapterFiles), revision: revisionOf(adapterFiles), subfolder, resolvedBy: "explicit" },
      base,
      aligned,
      onClose: (cleanup) => void cleanups.push(cleanup),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
