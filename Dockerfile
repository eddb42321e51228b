# syntax=docker/dockerfile:1
# Safe LoRA images. Targets (the last stage is the default, which is what a Hugging Face Docker Space builds):
#   worker      `npm run worker`: a CPU worker with no HTTP server; QUEUE_URL=redis://… to share the web's queue
#   gpu-worker  the same worker on a CUDA 12 + cuDNN 9 image, with onnxruntime's CUDA provider libraries
#   space       `safe-lora serve` on port 7860 with its state in /data (a Space's persistent storage)
# Secrets (HF_TOKEN, HF_WEBHOOK_SECRET, STATUS_TOKEN) come from the environment at run time, never from the image.
# No test fixtures in any target: `serve` and `worker` need none; the offline demo (`npm run demo`) runs from a
# checkout. The compiled local Hub is in dist/ only because the CLI imports the demo command; nothing starts it. scripts/build-images.sh builds these targets and runs them (README.md,
# "Deploying").
#
# The base images are arguments so that a build without registry access can name local stand-ins.
ARG NODE_IMAGE=node:24-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# The compiled JavaScript. Install scripts stay off: tsc needs none of the native modules.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
COPY workers ./workers
RUN npm run build

# The production dependencies only. Scripts are off for all but better-sqlite3 (the embedded queue), which
# downloads a prebuilt binary or compiles itself; onnxruntime-node's script stays off (the CPU provider ships in
# the package; .npmrc and package.json "allowScripts" say the same for a plain `npm ci`). Its macOS and Windows
# binaries (220 MB) go: the images are Linux.
FROM ${NODE_IMAGE} AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3 \
 && rm -rf node_modules/better-sqlite3/build/Release/obj* node_modules/better-sqlite3/deps \
    node_modules/onnxruntime-node/bin/napi-v6/darwin node_modules/onnxruntime-node/bin/napi-v6/win32

# The GPU worker's dependencies: onnxruntime-node's install script run on purpose, with the switch that makes it
# fetch the CUDA 12 provider libraries (libonnxruntime_providers_cuda.so, _shared.so, _tensorrt.so) from NuGet
# next to its binding. It needs network to api.nuget.org at build time; linux/x64 only.
FROM deps AS deps-gpu
RUN ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so

# What every target runs, whatever its base: package.json, the bin shim and the compiled code.
FROM ${NODE_IMAGE} AS app
WORKDIR /app
COPY package.json ./
COPY bin ./bin
COPY --from=build /app/dist ./dist

# The CPU targets: the app, read-only to the user that runs it (uid 1000, as Spaces run containers; the node
# images call it `node`, other bases get `app`), and /data writable by it.
FROM ${NODE_IMAGE} AS runtime
RUN (getent passwd 1000 >/dev/null || useradd --uid 1000 --user-group --create-home --shell /usr/sbin/nologin app) \
 && mkdir -p /data && chown 1000:1000 /data
ENV NODE_ENV=production DATA_DIR=/data
COPY --from=app /app /app
COPY --from=deps /app/node_modules /app/node_modules
WORKDIR /app

# A worker has no HTTP server to probe. It is the container's main process: when it dies the container stops and
# the restart policy starts another, and a job it held is taken again by another worker (the queue's lease or
# BullMQ's stalled-job check). A probe of Redis would say nothing about this worker.
FROM runtime AS worker
USER 1000:1000
HEALTHCHECK NONE
CMD ["node", "dist/workers/worker.js"]

# Node itself comes from the Node image: the CUDA images ship none. Ubuntu 24.04's glibc (2.39) runs what was
# built on bookworm's (2.36). SAFE_LORA_EP is left at auto: cuda, then webgpu, then cpu, by what loads.
FROM ${NODE_IMAGE} AS node-binary

FROM ${CUDA_IMAGE} AS gpu-worker
COPY --from=node-binary /usr/local/bin/node /usr/local/bin/node
# The same account and /data as the CPU targets (Ubuntu 24.04 already has uid 1000: `ubuntu`).
RUN (getent passwd 1000 >/dev/null || useradd --uid 1000 --user-group --create-home --shell /usr/sbin/nologin app) \
 && mkdir -p /data && chown 1000:1000 /data
ENV NODE_ENV=production DATA_DIR=/data
COPY --from=app /app /app
COPY --from=deps-gpu /app/node_modules /app/node_modules
WORKDIR /app
USER 1000:1000
HEALTHCHECK NONE
CMD ["node", "dist/workers/worker.js"]

# The bot for a Hugging Face Docker Space (or any container host): webhooks, status page and an in-process worker.
FROM runtime AS space
ENV PORT=7860
USER 1000:1000
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "bin/safe-lora.js", "serve"]
