import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BotConfig, effectiveConfig, loadBotConfig, parseConfigYaml, RepoConfigFile } from "../../src/config/bot-config.js";

const dir = mkdtempSync(join(tmpdir(), "safe-lora-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("safe-lora.yaml", () => {
  it("lays a repo's keys over the bot's defaults", () => {
    const file = parseConfigYaml("select: fraction:0.2\nexclude: [old/*]\nlimits:\n  maxModules: 64\n", RepoConfigFile);
    expect(file.ok).toBe(true);
    const config = effectiveConfig(BotConfig.parse({ allowUsers: ["ops"] }), file.ok ? file.value : null);
    expect(config).toMatchObject({ select: { mode: "fraction", value: 0.2 }, exclude: ["old/*"], allowUsers: ["ops"], enabled: true });
    expect(config.limits).toMatchObject({ maxModules: 64, maxFetchGB: 40 });
  });

  it("takes an operator beside the selection, from the repo's file over BOT_CONFIG's, paper by default", () => {
    expect(BotConfig.parse({}).operator).toEqual({ kind: "paper" });
    const bot = BotConfig.parse({ operator: "subspace:0.9" });
    expect(bot.operator).toEqual({ kind: "subspace", energy: 0.9 });
    const file = parseConfigYaml("select: top-k:4\noperator: subspace:8\n", RepoConfigFile);
    expect(file.ok).toBe(true);
    expect(effectiveConfig(bot, file.ok ? file.value : null)).toMatchObject({ select: { mode: "top-k", value: 4 }, operator: { kind: "subspace", rank: 8 } });
    const wrong = parseConfigYaml("operator: subspace:1.5\n", RepoConfigFile);
    expect(wrong).toMatchObject({ ok: false, problem: { key: "operator", line: 1, message: expect.stringMatching(/energy share strictly between 0 and 1/) } });
  });

  // Issue 7 item 5: a repo's limits used to replace the operator's, so a repo could raise them.
  it("lets a repo lower the operator's limits but never raise them", () => {
    const bot = BotConfig.parse({ limits: { maxModules: 100, maxFetchGB: 10, maxRunMinutes: 30 } });
    const file = parseConfigYaml("limits:\n  maxModules: 100000\n  maxFetchGB: 5000\n  maxRunMinutes: 5\n  maxDiskGB: 1\n", RepoConfigFile);
    expect(file.ok).toBe(true);
    const config = effectiveConfig(bot, file.ok ? file.value : null);
    expect(config.limits).toMatchObject({ maxModules: 100, maxFetchGB: 10, maxRunMinutes: 5, maxDiskGB: 1 });
  });

  // Issue 7 item 8: toJS() threw on the expansion, and the job was retried as a bug.
  it("turns a YAML alias bomb into a config problem, not an exception", () => {
    const rows = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 12; i++) rows.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(",")}]`);
    const result = parseConfigYaml(`${rows.join("\n")}\nselect: top-k:3\n`, RepoConfigFile);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problem.message).toMatch(/^cannot be read: .*alias/i);
  });

  it.each([
    // tau=0.3 is an alias every parser of selections takes; a typo is answered with the spelling meant.
    ["select: treshold:0.3\n", "select", 1, /did you mean threshold:0\.3\?/],
    ["enabled: yes please\n", "enabled", 1, /expected boolean/],
    ["pullRequests: per-folder\n", "pullRequests", 1, /per-adapter|per-repo/],
    ["pair:\n  base: not an id\n  aligned: a/b\n", "pair.base", 2, /org\/name/],
    ["\nlimits:\n  maxFetchGB: -1\n", "limits.maxFetchGB", 3, /expected number to be >0/],
    ["selekt: top-k:3\n", "selekt", 1, /unknown key/],
    ["select: [\n", "", 2, /not valid YAML/],
  ])("points at the key and line of %j", (text, key, line, message) => {
    const result = parseConfigYaml(text, RepoConfigFile);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.problem.key).toBe(key);
      expect(result.problem.line).toBe(line);
      expect(result.problem.message).toMatch(message);
    }
  });
});

describe("BOT_CONFIG", () => {
  it("reads the bot-wide file, and refuses a bad one with its path, line and key", () => {
    writeFileSync(join(dir, "good.yaml"), "watch: [acme]\nselect: threshold:0.35\nexcludeRepos: [acme/private-thing]\n");
    expect(loadBotConfig(join(dir, "good.yaml"))).toMatchObject({ watch: ["acme"], select: { mode: "threshold", value: 0.35 }, reconcileMinutes: 60 });
    writeFileSync(join(dir, "bad.yaml"), "watch: acme\n");
    expect(() => loadBotConfig(join(dir, "bad.yaml"))).toThrow(/bad\.yaml:1: watch: Invalid input: expected array/);
    expect(() => loadBotConfig(join(dir, "missing.yaml"))).toThrow(/cannot be read/);
  });

  it("takes inference endpoints (operator only) and refuses a default endpoint that is not one of them", () => {
    const config = BotConfig.parse({ inferenceEndpoints: { "tgi-1": { url: "https://tgi.internal/", protocol: "tgi", tokenEnv: "TGI_TOKEN" } }, behaviour: { endpoint: "tgi-1" } });
    expect(config.inferenceEndpoints["tgi-1"]).toMatchObject({ protocol: "tgi", timeoutSeconds: 300, requestTimeoutSeconds: 60, concurrency: 2, maxNewTokens: 64 });
    expect(BotConfig.safeParse({ behaviour: { endpoint: "nope" } }).error?.issues[0]).toMatchObject({ path: ["behaviour", "endpoint"], message: expect.stringContaining("add one under inferenceEndpoints") });
    expect(BotConfig.safeParse({ inferenceEndpoints: { x: { url: "file:///etc/passwd", protocol: "tgi" } } }).success).toBe(false);
    expect(BotConfig.safeParse({ inferenceEndpoints: { x: { url: "http://h/", protocol: "tgi", tokenEnv: "lower" } } }).success).toBe(false);
    expect(BotConfig.parse({}).behaviour).toEqual({ endpoint: null, task: [] });
  });

  it("takes trustedModels (operator only) and refuses it in a repo's file", () => {
    writeFileSync(join(dir, "trusted.yaml"), "trustedModels: [myorg/*, other/model-chat]\n");
    expect(loadBotConfig(join(dir, "trusted.yaml")).trustedModels).toEqual(["myorg/*", "other/model-chat"]);
    writeFileSync(join(dir, "trusted-bad.yaml"), "trustedModels: [../x]\n");
    expect(() => loadBotConfig(join(dir, "trusted-bad.yaml"))).toThrow(/trustedModels\.0: must be a model id/);
    const repo = parseConfigYaml("trustedModels: ['*/*']\n", RepoConfigFile);
    expect(repo.ok).toBe(false);
  });
});
