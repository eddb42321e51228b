// The miniature's refusal and task scores under the subspace operator at a few k, next to the paper operator's, at
// the same selections (issue 13, must show 4): each variant of adapter-harmful-mix is made by patchAdapter from the
// local folders, seeded into a local Hub, and measured by measureBehaviour through LocalInferenceEndpoint (tgi
// protocol), as test/behaviour/miniature-scores.test.ts measures the paper's variants against reference.json.
//
//   npx tsx bench/subspace-behaviour.ts
import { loadPromptSet } from "../src/behaviour/load-prompt-set.js";
import { measureBehaviour, type CheckSubject } from "../src/behaviour/measure-behaviour.js";
import { InferenceEndpointConfig } from "../src/behaviour/schema.js";
import { seedRepo, type SeedFile } from "../src/local-hub/seed.js";
import { formatOperator, parseOperator, type Operator } from "../src/projection/operator.js";
import type { ModuleReport } from "../src/report/schema.js";
import { endpointWorld, patchHarmfulMix, REFERENCE_MAX_NEW_TOKENS } from "../test/local-inference/endpoint-world.js";

const SELECTIONS = ["threshold:0.5", "top-k:4"];
const OPERATORS = ["paper", "subspace:1", "subspace:4", "subspace:16", "subspace:0.9"].map(parseOperator);
const VARIANTS_REPO = "acme/miniature-harmful-mix-operators";

interface Variant {
  readonly selection: string;
  readonly operator: Operator;
  readonly folder: string;
  readonly modules: readonly ModuleReport[];
}

async function makeVariant(selection: string, operator: Operator, files: SeedFile[]): Promise<Variant> {
  const variant = await patchHarmfulMix(selection, operator);
  try {
    const folder = `${selection}_${formatOperator(operator)}`.replace(/:/g, "-");
    files.push({ path: `${folder}/adapter_model.safetensors`, data: Buffer.from(await variant.weights.arrayBuffer()) }, { path: `${folder}/adapter_config.json`, data: variant.configText });
    return { selection, operator, folder, modules: variant.report.modules };
  } finally {
    await variant.release();
  }
}

const percent = (value: number | null) => (value === null ? "n/a" : `${(100 * value).toFixed(1)} %`);

function describeSubspace(modules: readonly ModuleReport[]): string {
  const projected = modules.filter((module) => module.projected);
  if (projected.length === 0 || projected[0]!.subspaceRank === undefined) return "—";
  const ks = projected.map((module) => module.subspaceRank!);
  const energies = projected.map((module) => module.capturedEnergy!);
  const capped = projected.filter((module) => module.subspaceCapped).length;
  return `k ${Math.min(...ks)}–${Math.max(...ks)}, energy ${percent(Math.min(...energies))}–${percent(Math.max(...energies))}${capped ? `, ${capped} capped` : ""}`;
}

const world = await endpointWorld();
try {
  const files: SeedFile[] = [];
  const variants: Variant[] = [];
  for (const selection of SELECTIONS) for (const operator of OPERATORS) variants.push(await makeVariant(selection, operator, files));
  const sha = (await seedRepo(world.hub, VARIANTS_REPO, files)).commit.id;
  const endpoint = await world.start({ flavour: "tgi" });
  const promptSet = loadPromptSet("test/fixtures/miniature-prompt-set.json");
  const access = {
    name: "miniature-tgi",
    config: InferenceEndpointConfig.parse({ url: endpoint.url, protocol: "tgi", model: world.family.chat.id, maxNewTokens: REFERENCE_MAX_NEW_TOKENS, timeoutSeconds: 600, requestTimeoutSeconds: 120 }),
    token: null,
  };
  const measure = async (subject: CheckSubject) => {
    const { evidence } = await measureBehaviour({ endpoint: access, promptSet, subjects: [subject] });
    if (evidence.status !== "measured") throw new Error(`not measured: ${evidence.reason}`);
    return evidence.subjects[0]!.scores;
  };
  const rows: string[][] = [];
  const chat = await measure({ role: "original", adapterId: null, revision: world.family.chat.sha, publicId: world.family.chat.id });
  rows.push(["chat (no adapter)", "—", "—", "—", percent(chat.harmfulRefused), percent(chat.benignAnswered), percent(chat.taskAccuracy)]);
  const mix = await measure({ role: "original", adapterId: world.harmfulMix, revision: world.family.harmfulMix.sha, publicId: world.family.harmfulMix.id });
  rows.push(["chat + harmful-mix", "—", "—", "—", percent(mix.harmfulRefused), percent(mix.benignAnswered), percent(mix.taskAccuracy)]);
  for (const variant of variants) {
    const adapterId = `${VARIANTS_REPO}@${sha}/${variant.folder}`;
    const scores = await measure({ role: "patched", adapterId, revision: sha, publicId: adapterId });
    const projected = variant.modules.filter((module) => module.projected).length;
    rows.push([variant.selection, formatOperator(variant.operator), `${projected}/${variant.modules.length}`, describeSubspace(variant.modules), percent(scores.harmfulRefused), percent(scores.benignAnswered), percent(scores.taskAccuracy)]);
  }
  const header = ["selection", "operator", "projected", "subspace (projected modules)", "harmful refused", "benign answered", "task accuracy"];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]) => `| ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join(" | ")} |`;
  console.log([line(header), `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`, ...rows.map(line)].join("\n"));
  console.log(`\nminiature family (test/fixtures/miniature), prompt set ${promptSet.name}: ${promptSet.harmful.length} harmful, ${promptSet.benign.length} benign, ${promptSet.task?.length ?? 0} task prompts, greedy, ${REFERENCE_MAX_NEW_TOKENS} new tokens`);
} finally {
  await world.close();
}
