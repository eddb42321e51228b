#!/usr/bin/env bash
# bench/full-finetune-modules.ts on the GPU machine (issue 13, must show 3): one 8B-shaped decoder layer patched as
# a full fine-tune on the GPU and on that machine's CPU, time per module, JSON and logs into $OUT.
#
# That machine has no Node.js and reaches no registry, and node_modules (555 MB) is far over what a run carries
# (64 MiB), so two steps:
#   here, once:          bash bench/gpu-full-finetune.sh pack
#                        (node, onnxruntime-node's Linux x64 part and the Vulkan loader, by the shared
#                        device/pack-for-gpu.sh, plus the bench bundled into one file by esbuild: ~40 MiB in
#                        .bench/gpu-carry, ignored by .gitignore's /.bench/)
#   on the GPU machine:  run(command: "bash bench/gpu-full-finetune.sh", carry: [".bench/gpu-carry"], timeout_s: 420)
#
# GPU: --ep cuda first. onnxruntime's CUDA provider is not installed there (its CUDA 12 libraries come from
# api.nuget.org, which the machine cannot reach, and it has CUDA 13: shared/device/README.md), so that run is
# expected to stop at once with "cuda execution provider not available"; the GPU figures then come from
# --ep webgpu (onnxruntime's WebGPU provider through Vulkan, seen working on the H200), named as such in the JSON.
set -uo pipefail
cd "$(dirname "$0")/.."
carry=.bench/gpu-carry
layers=${LAYERS:-1}

if [ "${1:-}" = pack ]; then
  set -e
  pack=${PACK_FOR_GPU:-../shared/device/pack-for-gpu.sh}
  [ -f "$pack" ] || { echo "no $pack: set PACK_FOR_GPU to shared/device/pack-for-gpu.sh" >&2; exit 1; }
  bash "$pack" "$carry"
  # onnxruntime-node stays outside the bundle: unpack.sh unpacks it into .bench/node_modules, where the bundle finds it.
  npx --no-install esbuild bench/full-finetune-modules.ts --bundle --platform=node --format=esm --target=node20 \
    --external:onnxruntime-node --log-level=warning --outfile="$carry/full-finetune-modules.mjs" \
    --banner:js="import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"
  du -sh "$carry"
  exit 0
fi

out=${OUT:-$PWD/.bench/gpu-full-finetune-out}
mkdir -p "$out"
[ -x "$carry/unpack.sh" ] && [ -f "$carry/full-finetune-modules.mjs" ] || {
  echo "FAIL: $carry is missing: run 'bash bench/gpu-full-finetune.sh pack' on the development machine and name $carry in carry" >&2
  exit 2
}
bash "$carry/unpack.sh" || { echo "FAIL: $carry/unpack.sh failed" >&2; exit 2; }
export PATH=$PWD/$carry/bin:$PATH
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || echo "note: nvidia-smi failed (see nvidia-smi.txt)"

# Runs the bench on one provider; its status: 0 measured, 3 the provider did not load, else a failure.
bench() {
  node "$carry/full-finetune-modules.mjs" --ep "$1" --layers "$layers" --out "$out/$1.json" 2>&1 | tee "$out/$1.log"
}

bench cuda
cuda=$?
gpu=cuda
if [ "$cuda" -eq 3 ]; then
  echo "CUDA: onnxruntime's CUDA execution provider is not available on this machine (see cuda.log); measuring the GPU with --ep webgpu instead"
  bench webgpu
  webgpu=$?
  gpu=webgpu
  [ "$webgpu" -eq 0 ] || echo "FAIL: no GPU provider ran (cuda: not available; webgpu: status $webgpu, see webgpu.log)"
elif [ "$cuda" -ne 0 ]; then
  echo "FAIL: the cuda run failed with status $cuda (see cuda.log)"
fi
bench cpu
cpu=$?
[ "$cpu" -eq 0 ] || echo "FAIL: the cpu run failed with status $cpu (see cpu.log)"
if [ -f "$out/$gpu.json" ] && [ -f "$out/cpu.json" ]; then
  echo "== seconds per module: $gpu against cpu =="
  node -e '
    const [gpu, cpu] = process.argv.slice(1).map((path) => JSON.parse(require("fs").readFileSync(path, "utf8")));
    const cpuOf = new Map(cpu.modules.map((m) => [m.module, m.seconds]));
    for (const m of gpu.modules) console.log(`${m.module.padEnd(32)} ${m.shape.join(" × ").padEnd(13)} ${gpu.executionProvider} ${m.seconds.toFixed(2).padStart(7)} s   cpu ${cpuOf.get(m.module)?.toFixed(2).padStart(7)} s`);
    console.log(`total: ${gpu.executionProvider} ${gpu.totalSeconds} s, cpu ${cpu.totalSeconds} s (${cpu.machine.cores} cores); GPU ${gpu.machine.gpu}`);
  ' "$out/$gpu.json" "$out/cpu.json" | tee "$out/summary.txt"
fi
[ -f "$out/$gpu.json" ] && [ "$cpu" -eq 0 ]
