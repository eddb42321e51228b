// Several adapters on one pair in one process, as a worker patches them: the first finds the pair cold (no disk
// cache: its weights are read over HTTP), the others find it warm in the projection thread. Prints one JSON line.
// Usage: run-warm-pairs.ts <base> <aligned> <out> <ep> <warm MB> <adapter>…; HF_ENDPOINT and HF_TOKEN say which Hub.
import { rmSync } from "node:fs";
import { SafeLoraError } from "../src/errors.js";
import { openInputs } from "../src/pipeline/open-inputs.js";
import { patchAdapter, type PatchedAdapter } from "../src/pipeline/patch-adapter.js";
import { variantFiles, writeVariant } from "../src/pipeline/variant-files.js";
import { ExecutionProviderChoice } from "../src/projection/execution-provider.js";
import { ProjectionThread } from "../src/projection/projection-thread.js";
import type { OpenedProvider } from "../src/projection/provider-loading.js";
import { parseSelection } from "../src/projection/selection.js";

const [base, aligned, out, ep, warmMb, ...adapters] = process.argv.slice(2) as [string, string, string, string, string, ...string[]];
const choice = ExecutionProviderChoice.parse(ep);
const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

let opened: OpenedProvider;
try {
  opened = await ProjectionThread.shared().open(choice);
} catch (error) {
  if (!(error instanceof SafeLoraError && error.code === "execution-provider-unavailable")) throw error;
  print({ unavailable: error.message });
  process.exit(0);
}

const access = { hubUrl: process.env.HF_ENDPOINT ?? "https://huggingface.co", ...(process.env.HF_TOKEN ? { accessToken: process.env.HF_TOKEN } : {}) };
/**
 * The highest RSS and main-thread ArrayBuffers seen during one run, sampled every 50 ms: where the process's memory
 * went (V kept warm lives in the projection thread and shows in RSS only; buffers on the main thread show in both).
 */
function memorySampler() {
  const peak = { rssBytes: 0, mainArrayBuffersBytes: 0 };
  const sample = () => {
    const { rss, arrayBuffers } = process.memoryUsage();
    peak.rssBytes = Math.max(peak.rssBytes, rss);
    peak.mainArrayBuffersBytes = Math.max(peak.mainArrayBuffersBytes, arrayBuffers);
  };
  const timer = setInterval(sample, 50);
  return () => {
    clearInterval(timer);
    sample();
    return peak;
  };
}

const runs = [];
for (const adapter of adapters) {
  rmSync(out, { recursive: true, force: true });
  const sampled = memorySampler();
  const started = performance.now();
  const inputs = await openInputs({ adapter, base, aligned, access, allowModelTree: false });
  let patched: PatchedAdapter;
  try {
    patched = await patchAdapter({ ...inputs, selection: parseSelection("top-k:10"), executionProvider: choice, cache: null, warmPairs: { maxBytes: Number(warmMb) * 1e6 } });
  } finally {
    await inputs.close();
  }
  await writeVariant(out, variantFiles(patched, { alignedHubId: null, license: null, command: "bench" }));
  await patched.release();
  const wallMs = performance.now() - started;
  runs.push({ adapter, wallMs, memory: sampled(), sources: patched.alignmentSources, bytesRead: patched.report.bytesRead, projected: patched.report.projectedCount, modules: patched.report.moduleCount, provider: patched.report.operator.executionProvider });
}
const usage = process.resourceUsage();
print({ provider: opened.provider, fallbacks: opened.fallbacks, runs, warm: await ProjectionThread.shared().warmStatus(), cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000, maxRssBytes: usage.maxRSS * 1024 });
