import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const binaries = join(dirname(createRequire(import.meta.url).resolve("onnxruntime-node")), "..", "bin", "napi-v6", process.platform, process.arch);

/**
 * npm installs onnxruntime-node without its CUDA provider (its download is switched off in package.json);
 * on a machine where someone installed it, refusing `--ep cuda` cannot be observed.
 */
export const cudaProviderInstalled = existsSync(join(binaries, "libonnxruntime_providers_cuda.so"));
