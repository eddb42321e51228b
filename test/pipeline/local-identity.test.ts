import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SafeLoraReport } from "../../src/report/schema.js";
import { runCli } from "../helpers/cli.js";
import { copyGolden, rewriteSafetensors, type CaseCopy } from "../helpers/fixture-copy.js";
import { shardCheckpoint } from "../helpers/shard.js";

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** What `sha256sum` would need to be told to check a header: the first 8 + N bytes of the file. */
function headerSha256(path: string): string {
  const bytes = readFileSync(path);
  return sha256(bytes.subarray(0, 8 + Number(bytes.readBigUInt64LE(0))));
}

let fixture: CaseCopy;
beforeEach(() => {
  fixture = copyGolden("llama-gqa-qv");
});
afterEach(() => fixture.remove());

let runs = 0;
async function patchReport(): Promise<SafeLoraReport> {
  const out = join(fixture.root, `out-${(runs += 1)}`);
  const result = await runCli(["patch", "--adapter", fixture.adapter, "--base", fixture.base, "--aligned", fixture.chat, "--out", out, "--json"]);
  expect(result.code).toBe(0);
  return SafeLoraReport.parse(JSON.parse(result.stdout));
}

describe("local base and aligned folders in the report", () => {
  it("record config.json by size and sha256, and each weight file by size and header sha256", async () => {
    const report = await patchReport();
    for (const [role, folder] of [["base", fixture.base], ["aligned", fixture.chat]] as const) {
      const config = readFileSync(join(folder, "config.json"));
      expect(report.inputs[role].files).toEqual([{ path: "config.json", size: config.byteLength, sha256: sha256(config) }]);
      const weights = join(folder, "model.safetensors");
      expect(report.inputs[role].weightHeaders).toEqual([{ path: "model.safetensors", size: statSync(weights).size, headerSha256: headerSha256(weights) }]);
    }
    // Base and aligned of one family have the same layout: the header hash identifies a layout, not the values.
    expect(report.inputs.base.weightHeaders![0]!.headerSha256).toBe(headerSha256(join(fixture.chat, "model.safetensors")));
  });

  it("tell a re-saved checkpoint apart: other metadata, other header hash", async () => {
    const before = (await patchReport()).inputs.base.weightHeaders![0]!.headerSha256;
    await rewriteSafetensors(join(fixture.base, "model.safetensors"), (tensors, metadata) => {
      (metadata as Record<string, string>).note = "re-saved";
      return tensors;
    });
    const after = (await patchReport()).inputs.base.weightHeaders![0]!.headerSha256;
    expect(after).not.toBe(before);
    expect(after).toBe(headerSha256(join(fixture.base, "model.safetensors")));
  });

  it("record a sharded folder's index whole and every shard used by its header", async () => {
    await shardCheckpoint(fixture.base, 3);
    const report = await patchReport();
    const index = readFileSync(join(fixture.base, "model.safetensors.index.json"));
    expect(report.inputs.base.files).toContainEqual({ path: "model.safetensors.index.json", size: index.byteLength, sha256: sha256(index) });
    const shards = readdirSync(fixture.base).filter((name) => /^model-\d+-of-\d+\.safetensors$/.test(name));
    const used = report.inputs.base.weightHeaders!.map((entry) => entry.path).sort();
    expect(used.length).toBeGreaterThan(0);
    expect(shards).toEqual(expect.arrayContaining(used));
    for (const entry of report.inputs.base.weightHeaders!) expect(entry.headerSha256).toBe(headerSha256(join(fixture.base, entry.path)));
  });
});
