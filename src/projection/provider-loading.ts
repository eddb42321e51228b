// Which onnxruntime execution provider a choice ends up on, and why the better ones did not load. No zod here:
// the projection thread loads this module (execution-provider.ts holds the choice's schema).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { SafeLoraError } from "../errors.js";
import type { ExecutionProvider, ExecutionProviderChoice } from "./execution-provider.js";

/** What `auto` tries, best first: the first one whose session is created is the one that runs. */
export const AUTO_ORDER: readonly ExecutionProvider[] = ["cuda", "webgpu", "cpu"];

/** A provider `auto` tried and passed over, and why, in words an operator can act on. */
export interface ProviderFallback {
  readonly provider: ExecutionProvider;
  readonly reason: string;
}

/** The provider a choice resolved to, and the better ones that did not load on the way (only `auto` has any). */
export interface OpenedProvider {
  readonly provider: ExecutionProvider;
  readonly fallbacks: readonly ProviderFallback[];
}

/** Where onnxruntime-node keeps its native libraries, and where its install script puts the CUDA ones. */
function nativeFolder(): string {
  return join(dirname(createRequire(import.meta.url).resolve("onnxruntime-node")), "..", "bin", "napi-v6", process.platform, process.arch);
}

/** The CUDA provider library onnxruntime-node loads; npm installs the package without it (.npmrc). */
export const CUDA_PROVIDER_LIBRARY = "libonnxruntime_providers_cuda.so";

const HOW_TO_INSTALL: Record<ExecutionProvider, string> = {
  cuda:
    "install onnxruntime's CUDA 12 provider libraries with `ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` " +
    "(it downloads them from api.nuget.org), and CUDA 12 with cuDNN 9 (README, \"Execution providers\")",
  webgpu: "install the GPU's Vulkan driver and the Vulkan loader (Debian/Ubuntu: apt-get install libvulkan1) (README, \"Execution providers\")",
  cpu: "reinstall onnxruntime-node (npm ci)",
};

/**
 * Why `provider` cannot load, when that is known without trying: a missing library. onnxruntime's own message for
 * a missing CUDA library is only "Failed to load shared library"; and without a Vulkan loader the WebGPU provider
 * (Dawn) writes a warning to stderr from native code before it fails, which would break the CLI's one-line errors.
 * Null: it has to be tried. The Vulkan loader is probed with the dynamic loader itself (process.dlopen), which
 * searches exactly where Dawn's dlopen would; a library that is not a Node addon is refused after it was found.
 */
export function knownMissing(provider: ExecutionProvider): string | null {
  if (provider === "cuda" && process.platform === "linux" && !existsSync(join(nativeFolder(), CUDA_PROVIDER_LIBRARY))) {
    return `onnxruntime's CUDA 12 provider libraries are not installed (no ${CUDA_PROVIDER_LIBRARY} in node_modules/onnxruntime-node/bin/napi-v6/${process.platform}/${process.arch})`;
  }
  if (provider === "webgpu" && process.platform === "linux") {
    try {
      process.dlopen({ exports: {} }, "libvulkan.so.1");
    } catch (error) {
      if (/cannot open shared object/.test((error as Error).message)) return "the Vulkan loader (libvulkan.so.1) is not installed, and onnxruntime's WebGPU provider runs through Vulkan";
    }
  }
  return null;
}

/** onnxruntime's reason a session could not be made on `provider`, shortened to its first line. */
export function loadFailure(provider: ExecutionProvider, error: unknown): string {
  const detail = String((error as Error)?.message ?? error).split("\n")[0]!.slice(0, 200);
  if (provider === "cuda") return `onnxruntime could not start its CUDA provider (${detail}): it needs an NVIDIA GPU, CUDA 12 and cuDNN 9 on the library path`;
  if (provider === "webgpu") return `onnxruntime's WebGPU provider found no usable GPU (${detail})`;
  return `onnxruntime's CPU provider did not start (${detail})`;
}

/** An explicitly named provider that does not load: what is missing, how to install it, what else to use. */
export class ProviderUnavailable extends SafeLoraError {
  constructor(
    readonly provider: ExecutionProvider,
    /** The short reason (no advice), as `auto` records it for a provider it passed over. */
    readonly reason: string,
    cause?: unknown,
  ) {
    super(
      `execution provider "${provider}" is not available here: ${reason}; ${HOW_TO_INSTALL[provider]}; or use --ep cpu (SAFE_LORA_EP=cpu), or --ep auto, which falls back to what loads`,
      "execution-provider-unavailable",
      cause === undefined ? undefined : { cause },
    );
  }
}

/**
 * Opens `choice` with `open` (which makes a session on one provider, and throws ProviderUnavailable when it does
 * not load). A named provider is opened or fails; `auto` tries AUTO_ORDER in turn and records why each better one
 * did not load; the CPU, last, is not passed over: its failure is the answer. `open` is injected, so the order
 * and the recorded reasons can be tested without the providers.
 */
export async function openFirstAvailable<T>(choice: ExecutionProviderChoice, open: (provider: ExecutionProvider) => Promise<T>): Promise<OpenedProvider & { readonly opened: T }> {
  if (choice !== "auto") return { provider: choice, fallbacks: [], opened: await open(choice) };
  const fallbacks: ProviderFallback[] = [];
  const last = AUTO_ORDER.at(-1)!;
  for (const provider of AUTO_ORDER.slice(0, -1)) {
    try {
      return { provider, fallbacks, opened: await open(provider) };
    } catch (error) {
      fallbacks.push({ provider, reason: error instanceof ProviderUnavailable ? error.reason : String((error as Error)?.message ?? error) });
    }
  }
  return { provider: last, fallbacks, opened: await open(last) };
}
