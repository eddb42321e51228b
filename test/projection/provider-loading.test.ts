import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import type { ExecutionProvider } from "../../src/projection/execution-provider.js";
import { ProjectionSession } from "../../src/projection/projection-session.js";
import { ProjectionThread } from "../../src/projection/projection-thread.js";
import { AUTO_ORDER, knownMissing, openFirstAvailable, ProviderUnavailable } from "../../src/projection/provider-loading.js";
import { detectWorkerCapabilities } from "../../src/projection/worker-capabilities.js";
import { spawnSource } from "../helpers/cli.js";
import { cudaProviderInstalled } from "../helpers/onnxruntime.js";

/** A session factory where only `loads` load; it records what it was asked, in order. */
function factory(loads: readonly ExecutionProvider[]) {
  const tried: ExecutionProvider[] = [];
  const open = async (provider: ExecutionProvider) => {
    tried.push(provider);
    if (!loads.includes(provider)) throw new ProviderUnavailable(provider, `no ${provider} on this test machine`);
    return `session on ${provider}`;
  };
  return { open, tried };
}

afterAll(() => ProjectionThread.stop());

describe("auto: the first provider that loads, cuda → webgpu → cpu", () => {
  it("falls back to the CPU when cuda and webgpu do not load, recording why, in order", async () => {
    const { open, tried } = factory(["cpu"]);
    const opened = await openFirstAvailable("auto", open);
    expect(tried).toEqual(["cuda", "webgpu", "cpu"]);
    expect(opened).toEqual({
      provider: "cpu",
      opened: "session on cpu",
      fallbacks: [
        { provider: "cuda", reason: "no cuda on this test machine" },
        { provider: "webgpu", reason: "no webgpu on this test machine" },
      ],
    });
  });

  it("takes webgpu when cuda does not load, and never tries the CPU", async () => {
    const { open, tried } = factory(["webgpu", "cpu"]);
    const opened = await openFirstAvailable("auto", open);
    expect(tried).toEqual(["cuda", "webgpu"]);
    expect(opened.provider).toBe("webgpu");
    expect(opened.fallbacks).toEqual([{ provider: "cuda", reason: "no cuda on this test machine" }]);
  });

  it("takes cuda first when it loads", async () => {
    const { open, tried } = factory(["cuda", "webgpu", "cpu"]);
    expect(await openFirstAvailable("auto", open)).toEqual({ provider: "cuda", opened: "session on cuda", fallbacks: [] });
    expect(tried).toEqual(["cuda"]);
  });

  it("records the message of an error that is not ProviderUnavailable as the reason", async () => {
    const opened = await openFirstAvailable("auto", async (provider) => {
      if (provider === "cuda") throw new Error("driver crashed");
      if (provider === "webgpu") throw new ProviderUnavailable("webgpu", "no adapter");
      return provider;
    });
    expect(opened.fallbacks).toEqual([
      { provider: "cuda", reason: "driver crashed" },
      { provider: "webgpu", reason: "no adapter" },
    ]);
  });

  it("fails with the CPU's own error when nothing loads", async () => {
    const { open } = factory([]);
    await expect(openFirstAvailable("auto", open)).rejects.toThrow(/execution provider "cpu" is not available here: no cpu on this test machine/);
  });

  it("a named provider is opened as named, with no fallback when it does not load", async () => {
    const { open, tried } = factory(["cpu"]);
    await expect(openFirstAvailable("webgpu", open)).rejects.toBeInstanceOf(ProviderUnavailable);
    expect(tried).toEqual(["webgpu"]);
    expect(await openFirstAvailable("cpu", open)).toEqual({ provider: "cpu", opened: "session on cpu", fallbacks: [] });
  });

  it("tries every provider there is, the CPU last", () => {
    expect(AUTO_ORDER).toEqual(["cuda", "webgpu", "cpu"]);
  });
});

describe("a named provider that does not load", () => {
  it.skipIf(cudaProviderInstalled)("cuda without onnxruntime's CUDA libraries: says what is missing and how to install it", async () => {
    const error = await ProjectionSession.create("cuda").catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(SafeLoraError);
    expect((error as SafeLoraError).code).toBe("execution-provider-unavailable");
    expect((error as SafeLoraError).message).toMatch(
      /^execution provider "cuda" is not available here: onnxruntime's CUDA 12 provider libraries are not installed \(no libonnxruntime_providers_cuda\.so in node_modules\/onnxruntime-node\/bin\/napi-v6\/linux\/x64\); install .*ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules\/onnxruntime-node\/script\/install\.js.*CUDA 12 with cuDNN 9.*; or use --ep cpu/,
    );
  });

  it.skipIf(knownMissing("webgpu") === null)("webgpu without the Vulkan loader: refused before onnxruntime is asked, so nothing reaches stderr", { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "safe-lora-webgpu-"));
    try {
      const script = join(dir, "open-webgpu.mts");
      const source = new URL("../../src/projection/projection-session.ts", import.meta.url).pathname;
      writeFileSync(script, `import { ProjectionSession } from ${JSON.stringify(source)};\nawait ProjectionSession.create("webgpu").catch((error) => process.stdout.write(error.message));\n`);
      const result = await spawnSource(script, [], { cwd: dir });
      expect(result.stdout).toMatch(/^execution provider "webgpu" is not available here: the Vulkan loader \(libvulkan\.so\.1\) is not installed.*apt-get install libvulkan1.*--ep cpu/);
      // Dawn's own "Couldn't load Vulkan" warning would be written straight to the process's stderr.
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("detectWorkerCapabilities", () => {
  it("names the provider that ran, whether it is a GPU, and why the better ones did not load", async () => {
    const thread = { open: async () => ({ provider: "webgpu" as const, fallbacks: [{ provider: "cuda" as const, reason: "libraries missing" }] }) };
    expect(await detectWorkerCapabilities("auto", thread)).toEqual({ executionProvider: "webgpu", gpu: true, fallbacks: ["cuda: libraries missing"] });
  });

  it("on this machine, through the real projection thread: auto is the first provider that loads, the better ones each with a reason", async () => {
    const detected = await detectWorkerCapabilities("auto");
    const passedOver = AUTO_ORDER.slice(0, AUTO_ORDER.indexOf(detected.executionProvider));
    expect(detected.gpu).toBe(detected.executionProvider !== "cpu");
    expect(detected.fallbacks).toHaveLength(passedOver.length);
    detected.fallbacks.forEach((line, index) => expect(line).toMatch(new RegExp(`^${passedOver[index]}: \\S`)));
    // A named CPU always loads, with nothing passed over.
    expect(await detectWorkerCapabilities("cpu")).toEqual({ executionProvider: "cpu", gpu: false, fallbacks: [] });
  });
});
