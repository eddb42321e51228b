// One patch run in its own process, so that its peak RSS is the patch's alone. Prints one JSON line.
import { rmSync } from "node:fs";
import { patchAdapter } from "../src/pipeline/patch-adapter.js";
import { variantFiles, writeVariant } from "../src/pipeline/variant-files.js";
import { ExecutionProviderChoice } from "../src/projection/execution-provider.js";
import { parseSelection } from "../src/projection/selection.js";
import { LocalFolder } from "../src/storage/local-folder.js";

const [adapter, base, aligned, out, select = "top-k:10", ep = "cpu"] = process.argv.slice(2) as [string, string, string, string, string?, string?];
rmSync(out, { recursive: true, force: true });
const folders = { adapter: new LocalFolder(adapter), base: new LocalFolder(base), aligned: new LocalFolder(aligned) };
const started = performance.now();
const patched = await patchAdapter({
  adapter: { files: folders.adapter, revision: null },
  base: { files: folders.base, revision: null },
  aligned: { files: folders.aligned, revision: null },
  selection: parseSelection(select),
  executionProvider: ExecutionProviderChoice.parse(ep),
}).finally(() => Promise.all(Object.values(folders).map((folder) => folder.close())));
await writeVariant(out, variantFiles(patched, { alignedHubId: null, license: null, command: "bench" }));
const wallMs = performance.now() - started;
process.stdout.write(
  `${JSON.stringify({ wallMs, maxRssBytes: process.resourceUsage().maxRSS * 1024, bytesRead: patched.report.bytesRead, projected: patched.report.projectedCount, modules: patched.report.moduleCount })}\n`,
);
