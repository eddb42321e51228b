// One patch run in its own process, so that its peak RSS is the patch's alone. Prints one JSON line.
// Usage: run-patch.ts <adapter> <base> <aligned> <out> [select] [ep]; each input a folder or a Hub id
// (HF_ENDPOINT and HF_TOKEN say which Hub); BENCH_CACHE_DIR turns the alignment cache on.
import { rmSync } from "node:fs";
import { openInputs } from "../src/pipeline/open-inputs.js";
import { patchAdapter } from "../src/pipeline/patch-adapter.js";
import { variantFiles, writeVariant } from "../src/pipeline/variant-files.js";
import { AlignmentCache } from "../src/projection/alignment-cache.js";
import { ExecutionProviderChoice } from "../src/projection/execution-provider.js";
import { parseSelection } from "../src/projection/selection.js";

const [adapter, base, aligned, out, select = "top-k:10", ep = "cpu"] = process.argv.slice(2) as [string, string, string, string, string?, string?];
rmSync(out, { recursive: true, force: true });
const started = performance.now();
const inputs = await openInputs({
  adapter,
  base,
  aligned,
  access: { hubUrl: process.env.HF_ENDPOINT ?? "https://huggingface.co", ...(process.env.HF_TOKEN ? { accessToken: process.env.HF_TOKEN } : {}) },
  allowModelTree: false,
});
const patched = await patchAdapter({
  ...inputs,
  selection: parseSelection(select),
  executionProvider: ExecutionProviderChoice.parse(ep),
  cache: process.env.BENCH_CACHE_DIR ? new AlignmentCache(process.env.BENCH_CACHE_DIR, 20e9) : null,
}).finally(() => inputs.close());
await writeVariant(out, variantFiles(patched, { alignedHubId: null, license: null, command: "bench" }));
// Feature-detected, so that this script also runs against a checkout from before variants were staged on disk.
await (patched as { release?: () => Promise<void> }).release?.();
const wallMs = performance.now() - started;
const usage = process.resourceUsage();
process.stdout.write(
  `${JSON.stringify({ wallMs, cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000, maxRssBytes: usage.maxRSS * 1024, bytesRead: patched.report.bytesRead, projected: patched.report.projectedCount, modules: patched.report.moduleCount })}\n`,
);
