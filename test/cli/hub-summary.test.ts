import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliCacheDir } from "../../src/config/env.js";
import { SafeLoraReport } from "../../src/report/schema.js";
import { runCli } from "../helpers/cli.js";
import { goldenHub, type GoldenHub } from "../helpers/hub-fixtures.js";

let fixture: GoldenHub;
beforeAll(async () => {
  fixture = await goldenHub("llama-gqa-qv");
});
afterAll(() => fixture.close());

const headSha = (id: string) => {
  const repo = fixture.hub.store.repos.get(id)!;
  return repo.refs.get("refs/heads/main")!;
};

describe("the CLI summary of a Hub run", () => {
  it("prints the pair with revisions and resolvedBy, and says plainly that a model card chose the base", async () => {
    const result = await runCli(["patch", "--adapter", fixture.ids.adapter, "--out", join(fixture.work, "pair"), "--no-cache"], fixture.env);
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\n");
    expect(lines).toContain(`aligned  ${fixture.ids.chat} @ ${headSha(fixture.ids.chat)}  [adapter-config]`);
    expect(lines).toContain(
      `base     ${fixture.ids.base} @ ${headSha(fixture.ids.base)}  [model-tree: chosen from a model card on the Hub, which anyone who can edit that card can change]`,
    );
    expect(lines).toContain(`adapter  ${fixture.ids.adapter} @ ${headSha(fixture.ids.adapter)}  [explicit]`);
    // And on stderr, so that --json users see it too.
    expect(result.stderr).toContain(`safe-lora: warning: the base ${fixture.ids.base} was chosen from a model card on the Hub (the model tree)`);
  });

  it("says nothing of the model tree when the base is given", async () => {
    const result = await runCli(["patch", "--adapter", fixture.ids.adapter, "--base", fixture.ids.base, "--out", join(fixture.work, "explicit"), "--no-cache"], fixture.env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`base     ${fixture.ids.base} @ ${headSha(fixture.ids.base)}  [explicit]`);
    expect(result.stdout + result.stderr).not.toMatch(/model card|model tree/);
  });
});

describe("the alignment cache of the CLI", () => {
  it("lives in SAFE_LORA_CACHE_DIR, not in DATA_DIR, and a second run says its data came from it", async () => {
    const cacheDir = join(fixture.work, "cache");
    const first = await runCli(["patch", "--adapter", fixture.ids.adapter, "--out", join(fixture.work, "first"), "--json"], fixture.env);
    expect(first.code).toBe(0);
    const firstReport = SafeLoraReport.parse(JSON.parse(first.stdout));
    expect(firstReport.alignmentCache).toEqual({ hits: 0, misses: 8 });
    expect(readdirSync(join(cacheDir, "v1", "v")).length).toBeGreaterThan(0);
    expect(existsSync(join(fixture.work, "data"))).toBe(false);

    const second = await runCli(["patch", "--adapter", fixture.ids.adapter, "--out", join(fixture.work, "second")], fixture.env);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^read base 0 B, aligned 0 B \(from the alignment cache\), adapter \S+ \S+ in /m);

    const json = await runCli(["patch", "--adapter", fixture.ids.adapter, "--dry-run", "--json"], fixture.env);
    const report = SafeLoraReport.parse(JSON.parse(json.stdout));
    expect(report.alignmentCache).toEqual({ hits: 8, misses: 0 });
    expect(report.bytesRead.base).toBe(0);
    expect(report.bytesRead.aligned).toBe(0);
  });

  it("has no alignmentCache field with --no-cache", async () => {
    const result = await runCli(["patch", "--adapter", fixture.ids.adapter, "--dry-run", "--json", "--no-cache"], fixture.env);
    expect(SafeLoraReport.parse(JSON.parse(result.stdout)).alignmentCache).toBeUndefined();
  });
});

describe("cliCacheDir", () => {
  it.each([
    [{ SAFE_LORA_CACHE_DIR: "/srv/cache", XDG_CACHE_HOME: "/x" }, "/srv/cache"],
    [{ XDG_CACHE_HOME: "/x" }, "/x/safe-lora"],
    // A relative XDG_CACHE_HOME is invalid by the XDG spec: ignored rather than resolved against the working directory.
    [{ XDG_CACHE_HOME: "rel" }, "/home/u/.cache/safe-lora"],
    [{}, "/home/u/.cache/safe-lora"],
  ])("%j → %s", (env, expected) => {
    expect(cliCacheDir(env, "/home/u")).toBe(expected);
  });
});
