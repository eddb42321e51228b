import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SafeLoraReport } from "../../src/report/schema.js";
import { runCli } from "../helpers/cli.js";
import { GOLDEN_CASES, goldenPath, loadExpected, selectionFlag } from "../helpers/golden.js";
import { expectGoldenCosines, expectGoldenSelection, expectGoldenTensors } from "../helpers/golden-compare.js";
import { goldenHub, weightBytesServed, type GoldenHub } from "../helpers/hub-fixtures.js";
import { folderFiles, seedRepo } from "../../src/local-hub/seed.js";
import { openInputs } from "../../src/pipeline/open-inputs.js";
import { AlignmentCache } from "../../src/projection/alignment-cache.js";
import { patchAdapter } from "../../src/pipeline/patch-adapter.js";
import { SafeLoraError } from "../../src/errors.js";
import { HubRepoFiles, PARALLEL_PARTS, PART_BYTES } from "../../src/hub/hub-repo-files.js";

/** Bytes that any reader must fetch: every header (8-byte prefix + JSON), the index, and the target tensors. */
function minimumBytes(report: SafeLoraReport, caseName: string, role: "base" | "chat", fixture: GoldenHub): number {
  const repo = fixture.hub.store.repos.get(role === "base" ? fixture.ids.base : fixture.ids.chat)!;
  const head = repo.commits.get(repo.refs.get("refs/heads/main")!)!;
  let total = 0;
  for (const [path, file] of head.files) {
    if (path.endsWith(".index.json")) total += file.size;
    if (path.endsWith(".safetensors") && file.content.kind === "disk") total += 8 + Number(readFileSync(file.content.path).readBigUInt64LE(0));
  }
  const shapes = report.modules.map((m) => m.shape[0] * m.shape[1] * 4);
  return total + shapes.reduce((a, b) => a + b, 0);
}

describe.each([
  ["single-file", false],
  ["sharded", true],
] as const)("patch from the local Hub, models stored %s", (_label, sharded) => {
  describe.each(GOLDEN_CASES)("golden case %s", (caseName) => {
    let fixture: GoldenHub;
    beforeAll(async () => {
      fixture = await goldenHub(caseName, { sharded });
    });
    afterAll(() => fixture.close());

    describe.each(loadExpected(caseName).runs.map((run) => [run.expected_dir, run] as const))("%s", (_dir, run) => {
      let report: SafeLoraReport;
      let out: string;

      it("finds the pair through the model tree and reads only what it needs", async () => {
        out = join(fixture.work, run.expected_dir);
        fixture.hub.resetCounters();
        const result = await runCli(
          ["patch", "--adapter", fixture.ids.adapter, "--hub-url", fixture.hub.url, "--select", selectionFlag(run), "--out", out, "--json", "--no-cache"],
          fixture.env,
        );
        // No error; the warning that a model card chose the base is expected here (test/cli/hub-summary.test.ts).
        expect(result.stderr).not.toMatch(/safe-lora: (?!warning: )/);
        expect(result.stderr).toContain(`safe-lora: warning: the base ${fixture.ids.base} was chosen from a model card`);
        expect(result.code).toBe(0);
        report = SafeLoraReport.parse(JSON.parse(result.stdout));
        expect(report.inputs.aligned).toMatchObject({ location: fixture.ids.chat, resolvedBy: "adapter-config" });
        expect(report.inputs.base).toMatchObject({ location: fixture.ids.base, resolvedBy: "model-tree" });
        const chat = fixture.hub.store.repos.get(fixture.ids.chat)!;
        expect(report.inputs.aligned.revision).toBe(chat.refs.get("refs/heads/main"));
        // What the report says it read is what the Hub served, and close to the minimum.
        for (const [role, id] of [["base", fixture.ids.base], ["chat", fixture.ids.chat]] as const) {
          const served = weightBytesServed(fixture.hub, id);
          expect(report.bytesRead[role === "chat" ? "aligned" : "base"]).toBe(fixture.hub.bytesServed(id));
          expect(served).toBeLessThanOrEqual(1.05 * minimumBytes(report, caseName, role, fixture));
        }
      });

      it("matches the official cosines, selection and tensors", async () => {
        expectGoldenCosines(report, run);
        expectGoldenSelection(report, run);
        await expectGoldenTensors(caseName, run, out);
      });
    });
  });
});

describe("the alignment cache", () => {
  let fixture: GoldenHub;
  beforeAll(async () => {
    fixture = await goldenHub("llama-gqa-qv", { sharded: true });
    // A second adapter on the same pair, in another repo.
    await seedRepo(fixture.hub, "acme/second-lora", await folderFiles(goldenPath("llama-gqa-qv", "expected-threshold-0.5")));
  });
  afterAll(() => fixture.close());

  it("lets a second adapter on the same pair read no base or aligned bytes at all", async () => {
    const first = await runCli(["patch", "--adapter", fixture.ids.adapter, "--out", join(fixture.work, "first"), "--json"], fixture.env);
    expect(first.code).toBe(0);
    expect(weightBytesServed(fixture.hub, fixture.ids.base)).toBeGreaterThan(0);
    fixture.hub.resetCounters();

    const second = await runCli(["patch", "--adapter", "acme/second-lora", "--out", join(fixture.work, "second"), "--json"], fixture.env);
    expect(second.code).toBe(0);
    const report = SafeLoraReport.parse(JSON.parse(second.stdout));
    expect(report.bytesRead.base).toBe(0);
    expect(report.bytesRead.aligned).toBe(0);
    expect(fixture.hub.bytesServed(fixture.ids.base)).toBe(0);
    expect(fixture.hub.bytesServed(fixture.ids.chat)).toBe(0);
    // Same cosines as without the cache.
    const uncached = await runCli(["patch", "--adapter", "acme/second-lora", "--out", join(fixture.work, "third"), "--json", "--no-cache"], fixture.env);
    const expected = SafeLoraReport.parse(JSON.parse(uncached.stdout));
    expect(report.modules.map((m) => m.cosineExact)).toEqual(expected.modules.map((m) => m.cosineExact));
  });

  it("is skipped, with a notice, when a job's share of it would exceed its disk limit", async () => {
    const inputs = await openInputs({ adapter: "acme/second-lora", access: { hubUrl: fixture.hub.url, accessToken: fixture.user.token }, allowModelTree: true });
    const notices: string[] = [];
    const cache = new AlignmentCache(join(fixture.work, "small-cache"), 1e9);
    fixture.hub.resetCounters();
    const patched = await patchAdapter({ ...inputs, selection: { mode: "top-k", value: 3 }, executionProvider: "cpu", cache, limits: { maxCacheBytes: 1000 }, onNotice: (m) => notices.push(m) }).finally(() => inputs.close());
    await patched.release();
    expect(notices).toEqual([expect.stringMatching(/^not caching this pair: its alignment data would take 0\.0 GB of disk, more than the 0\.0 GB one job may use \(limits\.maxDiskGB\)$/)]);
    // Headers and indexes (a few KB) are still cached; no alignment entry is.
    expect(existsSync(join(fixture.work, "small-cache", "v1", "v"))).toBe(false);
    expect(existsSync(join(fixture.work, "small-cache", "v1", "doc"))).toBe(true);
    expect(weightBytesServed(fixture.hub, fixture.ids.base)).toBeGreaterThan(0);
  });

  it("stays valid when a commit only edits the model's README", async () => {
    await seedRepo(fixture.hub, fixture.ids.chat, [{ path: "README.md", data: `---\nbase_model: ${fixture.ids.base}\n---\nNew words.\n` }]);
    fixture.hub.resetCounters();
    const result = await runCli(["patch", "--adapter", fixture.ids.adapter, "--out", join(fixture.work, "after-readme"), "--json"], fixture.env);
    expect(result.code).toBe(0);
    expect(weightBytesServed(fixture.hub, fixture.ids.chat)).toBe(0);
  });
});

describe("repos holding several adapters, and pinned revisions", () => {
  let fixture: GoldenHub;
  beforeAll(async () => {
    fixture = await goldenHub("llama-gqa-qv");
    await seedRepo(fixture.hub, "acme/many-loras", [
      ...(await folderFiles(goldenPath("llama-gqa-qv", "adapter"), "summaries")),
      ...(await folderFiles(goldenPath("llama-gqa-qv", "expected-threshold-0.5"), "dialogues")),
    ]);
  });
  afterAll(() => fixture.close());

  it("patches the adapter in --subfolder", async () => {
    const result = await runCli(["patch", "--adapter", "acme/many-loras", "--subfolder", "summaries", "--select", "threshold:0.33", "--out", join(fixture.work, "sub"), "--json"], fixture.env);
    expect(result.code).toBe(0);
    const report = SafeLoraReport.parse(JSON.parse(result.stdout));
    expect(report.inputs.adapter.files.map((f) => f.path)).toEqual(["summaries/adapter_config.json", "summaries/adapter_model.safetensors"]);
    const run = loadExpected("llama-gqa-qv").runs.find((r) => r.expected_dir === "expected-threshold-0.33")!;
    expectGoldenSelection(report, run);
  });

  it("reads every file of a run at the commit it pinned, whatever is pushed meanwhile", async () => {
    const inputs = await openInputs({ adapter: fixture.ids.adapter, access: { hubUrl: fixture.hub.url, accessToken: fixture.user.token }, allowModelTree: true });
    const pinned = inputs.aligned.revision;
    // Someone replaces the chat model's weights after the run pinned its revision.
    await seedRepo(fixture.hub, fixture.ids.chat, await folderFiles(goldenPath("llama-all-linear", "chat")));
    const patched = await patchAdapter({ ...inputs, selection: { mode: "threshold", value: 0.33 }, executionProvider: "cpu" }).finally(() => inputs.close());
    expect(patched.report.inputs.aligned.revision).toBe(pinned);
    expect(fixture.hub.store.repos.get(fixture.ids.chat)!.refs.get("refs/heads/main")).not.toBe(pinned);
    expectGoldenSelection(patched.report, loadExpected("llama-gqa-qv").runs.find((r) => r.expected_dir === "expected-threshold-0.33")!);
    await patched.release();
  });
});

describe("range reads of a large tensor", () => {
  let fixture: GoldenHub;
  const size = 2 * PART_BYTES + 12345;
  const data = Buffer.from(Array.from({ length: size }, (_, i) => (i * 7919) % 251));
  beforeAll(async () => {
    fixture = await goldenHub("llama-gqa-qv");
    await seedRepo(fixture.hub, "acme/big-file", [{ path: "weights.bin", data }]);
  });
  afterAll(() => fixture.close());

  /** A fetch that counts the range requests in flight at once, and can fail one of them. */
  function watchedFetch(fail?: (range: string) => boolean) {
    const seen = { ranges: [] as string[], inFlight: 0, most: 0 };
    const watched: typeof fetch = async (input, init) => {
      const range = new Headers(init?.headers).get("range");
      if (range) {
        seen.ranges.push(range);
        if (fail?.(range)) return new Response(JSON.stringify({ error: "Entry not found" }), { status: 404, headers: { "Content-Type": "application/json" } });
      }
      seen.inFlight += 1;
      seen.most = Math.max(seen.most, seen.inFlight);
      try {
        const response = await fetch(input, init);
        return new Response(await response.arrayBuffer(), { status: response.status, headers: response.headers });
      } finally {
        seen.inFlight -= 1;
      }
    };
    return { seen, watched };
  }

  it("are split into parts fetched side by side, each straight into the caller's buffer", async () => {
    const { seen, watched } = watchedFetch();
    const files = await HubRepoFiles.open({ hubUrl: fixture.hub.url, accessToken: fixture.user.token, fetch: watched }, { id: "acme/big-file", revision: "main" });
    const source = await files.openBytes("weights.bin");
    const into = new Uint8Array(size);
    const bytes = await source.read(5, size - 10, into);
    expect(bytes.buffer).toBe(into.buffer);
    expect(Buffer.from(bytes).equals(data.subarray(5, size - 5))).toBe(true);
    expect(seen.ranges).toEqual([`bytes=5-${PART_BYTES + 4}`, `bytes=${PART_BYTES + 5}-${2 * PART_BYTES + 4}`, `bytes=${2 * PART_BYTES + 5}-${size - 6}`]);
    expect(seen.most).toBeGreaterThan(1);
    expect(seen.most).toBeLessThanOrEqual(PARALLEL_PARTS);
    expect(source.bytesRead).toBe(size - 10);
  });

  it("fail as the Hub's error says, once every part has stopped", async () => {
    const { seen, watched } = watchedFetch((range) => range.startsWith(`bytes=${PART_BYTES}-`));
    const files = await HubRepoFiles.open({ hubUrl: fixture.hub.url, accessToken: fixture.user.token, fetch: watched }, { id: "acme/big-file", revision: "main" });
    const source = await files.openBytes("weights.bin");
    const error = await source.read(0, size).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(SafeLoraError);
    expect((error as SafeLoraError).code).toBe("hub-not-found");
    expect(seen.inFlight).toBe(0);
    expect(source.bytesRead).toBe(0);
  });
});
