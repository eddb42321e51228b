import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { patchAdapter } from "../../src/pipeline/patch-adapter.js";
import { LocalFolder } from "../../src/storage/local-folder.js";
import { writeSyntheticCase, type SyntheticModule } from "../helpers/tensors.js";

/**
 * 64 modules (q_proj and v_proj of 32 layers). Two of them are full-rank 1024 × 1024 modules, whose projection
 * alone takes several hundred milliseconds on the development machine: run on the main thread, as onnxruntime's
 * synchronous run() once was, it would hold the event loop (the bot's webhooks, /healthz, lease renewals) that long.
 */
const MODULES: SyntheticModule[] = Array.from({ length: 32 }, (_, layer) =>
  (["q_proj", "v_proj"] as const).map((target) => (layer < 1 ? { layer, target, dOut: 1024, dIn: 1024, rank: 1024 } : { layer, target, dOut: 128, dIn: 128, rank: 8 })),
).flat();

let root: string;
let dirs: { base: string; chat: string; adapter: string };
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "safe-lora-event-loop-"));
  dirs = await writeSyntheticCase(root, MODULES);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("a patch in progress", () => {
  it("leaves the event loop free: its longest delay stays under 100 ms while 64 modules are patched", { timeout: 180_000 }, async () => {
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    let patched;
    try {
      patched = await patchAdapter({
        adapter: { files: new LocalFolder(dirs.adapter), revision: null },
        base: { files: new LocalFolder(dirs.base), revision: null },
        aligned: { files: new LocalFolder(dirs.chat), revision: null },
        selection: { mode: "top-k", value: 8 },
        executionProvider: "cpu",
      });
    } finally {
      delay.disable();
    }
    await patched.release();
    expect(patched.report.moduleCount).toBe(64);
    const maxMs = delay.max / 1e6;
    process.stderr.write(`event loop: max delay ${maxMs.toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms over a 64-module patch\n`);
    expect(maxMs).toBeLessThan(100);
  });
});
