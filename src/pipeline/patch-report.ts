import type { OpenedProvider } from "../projection/provider-loading.js";
import { createHash } from "node:crypto";
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, type OpenedAdapter } from "../peft/open-adapter.js";
import type { ExecutionProviderChoice } from "../projection/execution-provider.js";
import { DEFAULT_OPERATOR, formatOperator, operatorFormula, type Operator } from "../projection/operator.js";
import type { PatchRecord } from "../report/record.js";
import type { FileDigest, HeaderDigest, SafeLoraReport } from "../report/schema.js";
import { projectsMostModules, type Selection } from "../projection/selection.js";
import { SHARD_INDEX, type Checkpoint } from "../safetensors/checkpoint.js";
import { inSubfolder, type RepoFiles } from "../storage/repo-files.js";
import { TOOL } from "../version.js";
import type { AssembledVariant } from "./patch-method.js";

/** A transformers model's config, hashed whole for local folders (it is small and says which model this is). */
const MODEL_CONFIG = "config.json";

/** The paper operator's formula: what reports and records made before there was a choice say. */
export const OPERATOR_FORMULA = operatorFormula(DEFAULT_OPERATOR);

/** Hashed in pieces of this size, so that hashing a large adapter never holds the event loop for long. */
const HASH_PIECE = 4 * 1024 * 1024;

/** One source of model weights: where it is and its files. */
/** The report's record of where the compute ran: the provider, what was asked, and why better ones did not load. */
export function executionFields(provider: OpenedProvider, requested: string) {
  return {
    executionProvider: provider.provider,
    requestedProvider: requested,
    ...(provider.fallbacks.length > 0 ? { providerFallbacks: [...provider.fallbacks] } : {}),
  };
}

export interface WeightsInput {
  readonly files: RepoFiles;
  /** How the report names it: a local path or a Hub id (default: the files' description). */
  readonly location?: string;
  /** Pinned commit for Hub repos; null for local folders. */
  readonly revision: string | null;
  readonly subfolder?: string;
  /** Which rule chose this model (`explicit`, `registry`, `model-tree`, …), for the report. */
  readonly resolvedBy?: string;
}

async function digest(files: RepoFiles, path: string): Promise<FileDigest> {
  const source = await files.openBytes(path);
  const hash = createHash("sha256");
  const piece = new Uint8Array(Math.min(HASH_PIECE, source.size));
  for (let at = 0; at < source.size; at += piece.byteLength) hash.update(await source.read(at, Math.min(piece.byteLength, source.size - at), piece));
  return { path, size: source.size, sha256: hash.digest("hex") };
}

/** Hub weight files by the LFS sha256 the Hub keeps as their content key: nothing more is read. */
async function hubDigests(checkpoint: Checkpoint): Promise<FileDigest[]> {
  return (await checkpoint.filesUsed()).flatMap(({ path, size, contentKey }) => (contentKey && /^[0-9a-f]{64}$/.test(contentKey) ? [{ path, size, sha256: contentKey }] : []));
}

/** sha256 of a safetensors file's first 8 + N bytes: its length prefix and JSON header, read again (kilobytes). */
async function headerDigest(files: RepoFiles, path: string): Promise<HeaderDigest> {
  const source = await files.openBytes(path);
  const prefix = await source.read(0, 8);
  const headerLength = Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true));
  const json = await source.read(8, headerLength);
  return { path, size: source.size, headerSha256: createHash("sha256").update(prefix).update(json).digest("hex") };
}

/**
 * What identifies a local model folder without reading its gigabytes: config.json and the shard index hashed whole,
 * each weight file used by its size and header hash (README, "What the report records").
 */
async function localIdentity(checkpoint: Checkpoint, subfolder: string): Promise<{ files: FileDigest[]; weightHeaders: HeaderDigest[] }> {
  const files: FileDigest[] = [];
  for (const name of [MODEL_CONFIG, SHARD_INDEX]) {
    const path = inSubfolder(subfolder, name);
    if (await checkpoint.files.exists(path)) files.push(await digest(checkpoint.files, path));
  }
  const weightHeaders: HeaderDigest[] = [];
  for (const { path } of await checkpoint.filesUsed()) weightHeaders.push(await headerDigest(checkpoint.files, path));
  return { files, weightHeaders };
}

export interface ReportInputs {
  readonly request: {
    readonly adapter: WeightsInput;
    readonly base: WeightsInput;
    readonly aligned: WeightsInput;
    readonly selection: Selection;
    readonly operator?: Operator | undefined;
    readonly executionProvider: ExecutionProviderChoice;
    readonly record?: PatchRecord | undefined;
  };
  readonly adapter: OpenedAdapter;
  readonly base: Checkpoint;
  readonly aligned: Checkpoint;
  readonly variant: AssembledVariant;
  /** When the run began (performance.now()), for the report's duration. */
  readonly started: number;
}

/** The report of a run: what was decided per module, and what it was made from. */
export async function buildReport({ request, adapter, base, aligned, variant, started }: ReportInputs): Promise<SafeLoraReport> {
  // What the run read, before the local folders' identity below is read: that is bookkeeping, not the patch's input.
  const bytesRead = { base: base.bytesRead, aligned: aligned.bytesRead, adapter: adapter.files.bytesRead };
  const at = (name: string) => inSubfolder(adapter.subfolder, name);
  const adapterDigests = [await digest(adapter.files, at(ADAPTER_CONFIG)), await digest(adapter.files, at(ADAPTER_WEIGHTS))];
  const { modules } = variant;
  const operator = request.operator ?? DEFAULT_OPERATOR;
  const projectedCount = modules.filter((module) => module.projected).length;
  const identity = async (input: WeightsInput, checkpoint: Checkpoint) =>
    input.revision === null ? localIdentity(checkpoint, input.subfolder ?? "") : { files: await hubDigests(checkpoint) };
  const described = (input: WeightsInput) => ({ location: input.location ?? input.files.description, revision: input.revision, resolvedBy: input.resolvedBy ?? "explicit" });
  return {
    schemaVersion: 1,
    method: "safe-lora",
    tool: TOOL,
    createdAt: new Date().toISOString(),
    selection: { mode: request.selection.mode, value: request.selection.value, threshold: variant.threshold },
    operator: {
      kind: operator.kind,
      setting: formatOperator(operator),
      formula: operatorFormula(operator),
      ...(variant.subspaceSources ? { subspaceSources: variant.subspaceSources } : {}),
      ...executionFields(variant.provider, request.executionProvider),
    },
    modules: [...modules],
    projectedCount,
    moduleCount: modules.length,
    untouchedTensors: [...adapter.untouched],
    bytesRead,
    inputs: {
      adapter: { ...described(request.adapter), files: adapterDigests },
      base: { ...described(request.base), ...(await identity(request.base, base)) },
      aligned: { ...described(request.aligned), ...(await identity(request.aligned, aligned)) },
    },
    durationMs: Math.round(performance.now() - started),
    ...(projectsMostModules(projectedCount, modules.length) ? { warnings: ["projects-most-modules" as const] } : {}),
    ...(variant.alignmentCache ? { alignmentCache: variant.alignmentCache } : {}),
    ...(request.record ? { record: request.record } : {}),
  };
}
