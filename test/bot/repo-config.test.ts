import { describe, expect, it } from "vitest";
import { describeProblem, loadRepoConfig } from "../../src/bot/repo-config.js";
import { BotConfig } from "../../src/config/bot-config.js";
import { MemoryForge } from "../helpers/memory-forge.js";

const BOT = BotConfig.parse({ select: "threshold:0.33", limits: { maxModules: 512 } });
const load = async (yaml: string | null) => {
  const forge = new MemoryForge();
  const sha = forge.createRepo({ repo: "acme/lora", files: yaml === null ? { "README.md": "x" } : { "safe-lora.yaml": yaml } });
  const files = await forge.open({ repo: "acme/lora", revision: sha });
  return { result: await loadRepoConfig(BOT, files, "safe-lora.yaml"), files };
};

describe("loadRepoConfig", () => {
  it("gives the bot-wide defaults to a repo without safe-lora.yaml", async () => {
    const { result } = await load(null);
    expect(result).toMatchObject({ ok: true, config: { enabled: true, select: { mode: "threshold", value: 0.33 }, limits: { maxModules: 512 } } });
  });

  it("lays the repo's file over them, and may lower a limit but not raise it", async () => {
    const lowered = (await load("select: top-k:3\nlimits: {maxModules: 64}\n")).result;
    expect(lowered).toMatchObject({ ok: true, config: { select: { mode: "top-k", value: 3 }, limits: { maxModules: 64 } } });
    const raised = (await load("limits: {maxModules: 4096}\n")).result;
    expect(raised).toMatchObject({ ok: true, config: { limits: { maxModules: 512 } } });
  });

  it("reads the file where the forge keeps it: a GitHub repo's .github/safe-lora.yml, not a safe-lora.yaml beside it", async () => {
    const forge = new MemoryForge(undefined, "github", ".github/safe-lora.yml");
    const sha = forge.createRepo({ repo: "acme/lora", files: { ".github/safe-lora.yml": "select: top-k:2\n", "safe-lora.yaml": "select: top-k:9\n" } });
    const files = await forge.open({ repo: "acme/lora", revision: sha });
    expect(await loadRepoConfig(BOT, files, forge.repoConfigPath)).toMatchObject({ ok: true, config: { select: { mode: "top-k", value: 2 } } });
  });

  it("reports an invalid file by key and line, keyed by this version of the file", async () => {
    const { result, files } = await load("enabled: true\nselect: treshold:0.3\n");
    expect(result).toMatchObject({ ok: false, problem: { key: "select", line: 2 }, fileKey: await files.contentKey("safe-lora.yaml") });
  });

  it("lets a repo choose one of the operator's inference endpoints by name, or off, and give task prompts; never a URL of its own", async () => {
    const bot = BotConfig.parse({ inferenceEndpoints: { tgi: { url: "http://127.0.0.1:9/", protocol: "tgi" } }, behaviour: { endpoint: "tgi" } });
    const loadWith = async (yaml: string) => {
      const forge = new MemoryForge();
      const sha = forge.createRepo({ repo: "acme/lora", files: { "safe-lora.yaml": yaml } });
      return loadRepoConfig(bot, await forge.open({ repo: "acme/lora", revision: sha }), "safe-lora.yaml");
    };
    expect(await loadWith("select: top-k:2\n")).toMatchObject({ ok: true, config: { behaviour: { endpoint: "tgi", task: [] } } });
    expect(await loadWith("behaviour: {endpoint: off}\n")).toMatchObject({ ok: true, config: { behaviour: { endpoint: null } } });
    expect(await loadWith('behaviour:\n  task:\n    - {prompt: "#say a?", expected: "a."}\n')).toMatchObject({
      ok: true,
      config: { behaviour: { endpoint: "tgi", task: [{ prompt: "#say a?", expected: "a." }] } },
    });
    expect(await loadWith("behaviour: {endpoint: other}\n")).toMatchObject({ ok: false, problem: { key: "behaviour.endpoint", message: expect.stringContaining('"other" is not an inference endpoint of this bot (tgi)') } });
    expect(await loadWith("behaviour: {endpoint: toString}\n")).toMatchObject({ ok: false, problem: { key: "behaviour.endpoint" } });
    expect(await loadWith("behaviour: {url: http://10.0.0.1/}\n")).toMatchObject({ ok: false, problem: { key: "behaviour.url" } });
    expect(await loadWith("inferenceEndpoints: {mine: {url: http://10.0.0.1/, protocol: tgi}}\n")).toMatchObject({ ok: false, problem: { key: "inferenceEndpoints" } });
  });

  it("describes a problem with the file's own text escaped", () => {
    expect(describeProblem({ key: "a*b", line: 3, message: "not _this_" }, "safe-lora.yaml")).toBe("`a*b` (safe-lora.yaml, line 3): not \\_this\\_");
    expect(describeProblem({ key: "", line: null, message: "not YAML" }, ".github/safe-lora.yml")).toBe(".github/safe-lora.yml: not YAML");
  });
});
