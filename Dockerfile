# The Safe LoRA bot as a Docker Space (or any container host): `safe-lora serve` on port 7860 with its state in
# /data, the Space's persistent storage. Configure it with the Space's secrets: HF_TOKEN, HF_WEBHOOK_SECRET,
# STATUS_TOKEN (and BOT_CONFIG pointing at a file in /data, if you use one).
FROM node:20-bookworm-slim AS build
# better-sqlite3 compiles its native module when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
COPY workers ./workers
# .npmrc tells onnxruntime-node's install script not to fetch CUDA libraries (the bot runs on the CPU provider).
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app /app
# The demo's tiny reference models.
COPY test/fixtures/golden ./test/fixtures/golden
ENV NODE_ENV=production PORT=7860 DATA_DIR=/data
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 7860
HEALTHCHECK CMD node -e "fetch('http://127.0.0.1:7860/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "bin/safe-lora.js", "serve"]
