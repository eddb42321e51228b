import { readFileSync } from "node:fs";
import { validate } from "dockerfile-utils";
import { describe, expect, it } from "vitest";
import { composeViolations, dockerfileViolations, finalStages, parseDockerfile, type Targets } from "./dockerfile-rules.js";

const ROOT = new URL("../../", import.meta.url);
const DOCKERFILE = readFileSync(new URL("Dockerfile", ROOT), "utf8");
const COMPOSE = readFileSync(new URL("compose.yaml", ROOT), "utf8");
const TARGETS: Targets = { space: "space", gpu: "gpu-worker" };

/** The real Dockerfile with one exact piece replaced; fails loudly when the piece is not there, so a sample cannot go stale. */
function edited(from: string, to: string, text = DOCKERFILE): string {
  expect(text.split(from).length - 1, `occurrences of ${JSON.stringify(from)}`).toBe(1);
  return text.replace(from, to);
}

describe("Dockerfile", () => {
  it("passes dockerfile-utils' lint with no errors or warnings", () => {
    expect(validate(DOCKERFILE).map(({ message, range }) => `line ${range.start.line + 1}: ${message}`)).toEqual([]);
  });

  it("keeps the project's image rules", () => {
    expect(dockerfileViolations(DOCKERFILE, TARGETS)).toEqual([]);
  });

  it("has the three targets as its final stages, the Space's last", () => {
    const file = parseDockerfile(DOCKERFILE);
    expect(finalStages(file).map((stage) => stage.name)).toEqual(["worker", "gpu-worker", "space"]);
    expect(file.stages.at(-1)?.name).toBe("space");
    expect(file.globalArgs.get("NODE_IMAGE")).toMatch(/^node:(22|24)-/);
  });

  it("starts the CLI's serve and the standalone worker that package.json names", () => {
    const pkg = JSON.parse(readFileSync(new URL("package.json", ROOT), "utf8")) as { scripts: Record<string, string>; engines: { node: string } };
    const cmd = (name: string): string[] => JSON.parse(parseDockerfile(DOCKERFILE).stages.find((stage) => stage.name === name)!.instructions.findLast((i) => i.keyword === "CMD")!.args) as string[];
    expect(cmd("space").join(" ")).toBe(pkg.scripts.start);
    expect(cmd("worker").join(" ")).toBe(pkg.scripts.worker);
    expect(cmd("gpu-worker").join(" ")).toBe(pkg.scripts.worker);
    // The images run Node 24; the package keeps running on Node 20.
    expect(pkg.engines.node).toBe(">=20.19");
  });
});

describe("the Dockerfile checker", () => {
  it("reports lint errors in a bad sample", () => {
    const messages = validate("from node:24\nWORKDIR app\nCMD [\"a\"]\nCMD [\"b\"]\n").map((diagnostic) => diagnostic.message);
    expect(messages).toEqual(expect.arrayContaining([expect.stringMatching(/uppercase/), expect.stringMatching(/absolute/), expect.stringMatching(/only be one CMD/)]));
  });

  it("reports every rule a small bad Dockerfile breaks", () => {
    const bad = [
      "ARG NODE_IMAGE=node:20-bookworm-slim",
      "FROM ${NODE_IMAGE} AS worker",
      "WORKDIR /app",
      "COPY . .",
      "RUN npm ci",
      'CMD ["node", "dist/workers/worker.js"]',
      "FROM ubuntu:24.04 AS gpu-worker",
      "ENV HF_TOKEN=hf_baked",
      "USER 1000",
      "HEALTHCHECK NONE",
      "FROM ${NODE_IMAGE} AS space",
      "USER root",
      "HEALTHCHECK NONE",
    ].join("\n");
    expect(dockerfileViolations(bad, TARGETS)).toEqual([
      "stage worker: FROM node:20-bookworm-slim is not a maintained Node LTS (22 or 24)",
      "stage gpu-worker, line 8: ENV bakes a secret into the image; pass it at run time",
      "stage space: FROM node:20-bookworm-slim is not a maintained Node LTS (22 or 24)",
      "target worker: no USER; run as uid 1000 (USER 1000:1000)",
      "target worker: no HEALTHCHECK; add one, or HEALTHCHECK NONE with a comment saying why",
      "target worker: an npm install with dev dependencies in the production image; use npm ci --omit=dev",
      "target worker, line 4: COPY . . puts the build context or test fixtures in a production image; copy the paths it runs from",
      "target worker: no production dependencies (npm ci --omit=dev, or node_modules copied from a stage that runs it)",
      "target gpu-worker: no production dependencies (npm ci --omit=dev, or node_modules copied from a stage that runs it)",
      "target space: USER root is not uid 1000",
      "target space: no production dependencies (npm ci --omit=dev, or node_modules copied from a stage that runs it)",
      "target space: no EXPOSE 7860 (the port Spaces route to)",
      "target space: its HEALTHCHECK must ask /healthz",
      "target space: ENV DATA_DIR=/data missing (a Space's persistent storage)",
      "target gpu-worker: FROM ubuntu:24.04 is not a CUDA 12 image with cuDNN (nvidia/cuda:12.x-cudnn-runtime-…)",
      "target gpu-worker: nothing installs onnxruntime's CUDA 12 provider (ONNXRUNTIME_NODE_INSTALL=cuda12)",
    ]);
  });

  // Each sample breaks one rule in the real file: the checker must see it there, not only in a toy.
  const breakages: Array<[string, string, string, RegExp]> = [
    ["the Space runs as root", "FROM runtime AS space\nENV PORT=7860\nUSER 1000:1000", "FROM runtime AS space\nENV PORT=7860\nUSER root", /^target space: USER root is not uid 1000$/],
    ["a worker without USER", "FROM runtime AS worker\nUSER 1000:1000\n", "FROM runtime AS worker\n", /^target worker: no USER/],
    ["dev dependencies copied in", "npm ci --omit=dev --ignore-scripts", "npm ci --ignore-scripts", /^target (worker|space|gpu-worker), line \d+: node_modules from deps(-gpu)?, which does not install with npm ci --omit=dev/],
    ["test fixtures in the Space", "CMD [\"node\", \"bin/safe-lora.js\", \"serve\"]", "COPY test/fixtures/golden ./test/fixtures/golden\nCMD [\"node\", \"bin/safe-lora.js\", \"serve\"]", /^target space, line \d+: COPY test\/fixtures\/golden/],
    ["the whole context in the app's files", "COPY bin ./bin\nCOPY --from=build", "COPY . .\nCOPY --from=build", /^target (worker|space|gpu-worker), line \d+: COPY \. \. puts the build context/],
    ["no EXPOSE 7860", "EXPOSE 7860\n", "", /^target space: no EXPOSE 7860/],
    ["no health check on the Space", "HEALTHCHECK --interval=30s", "HEALTHCHECK NONE\n# --interval=30s", /^target space: its HEALTHCHECK must ask \/healthz$/],
    ["DATA_DIR elsewhere", "ENV NODE_ENV=production DATA_DIR=/data\nCOPY --from=app /app /app\nCOPY --from=deps ", "ENV NODE_ENV=production DATA_DIR=/var/lib/bot\nCOPY --from=app /app /app\nCOPY --from=deps ", /^target space: ENV DATA_DIR=\/data missing/],
    ["the Space not the default target", 'CMD ["node", "bin/safe-lora.js", "serve"]\n', 'CMD ["node", "bin/safe-lora.js", "serve"]\nFROM runtime AS extra\nUSER 1000\nHEALTHCHECK NONE\n', /^target space is not the last stage/],
    ["Node 20 as the base", "ARG NODE_IMAGE=node:24-bookworm-slim", "ARG NODE_IMAGE=node:20-bookworm-slim", /^stage \w+: FROM node:20-bookworm-slim is not a maintained Node LTS/],
    ["a GPU worker without CUDA", "ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04", "ARG CUDA_IMAGE=ubuntu:24.04", /^target gpu-worker: FROM ubuntu:24.04 is not a CUDA 12 image/],
    ["CUDA 11", "ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04", "ARG CUDA_IMAGE=nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04", /^target gpu-worker: FROM nvidia\/cuda:11/],
    ["the CUDA provider not installed", "RUN ONNXRUNTIME_NODE_INSTALL=cuda12 node", "RUN ONNXRUNTIME_NODE_INSTALL=skip node", /^target gpu-worker: nothing installs onnxruntime's CUDA 12 provider/],
    ["the CUDA provider in the CPU images", "&& npm rebuild better-sqlite3", "&& npm rebuild better-sqlite3 && ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js", /^target (worker|space): installs onnxruntime's CUDA provider; only gpu-worker should$/],
    ["a token baked in", "ENV PORT=7860", "ENV PORT=7860 HF_WEBHOOK_SECRET=abc", /^stage space, line \d+: ENV bakes a secret/],
  ];
  it.each(breakages)("sees %s in the real Dockerfile", (_, from, to, expected) => {
    expect(dockerfileViolations(edited(from, to), TARGETS)).toContainEqual(expect.stringMatching(expected));
  });

  it("accepts a user created with uid 1000 by name", () => {
    const named = edited("FROM runtime AS space\nENV PORT=7860\nUSER 1000:1000", "FROM runtime AS space\nENV PORT=7860\nRUN useradd --uid 1000 bot || true\nUSER bot");
    expect(dockerfileViolations(named, TARGETS)).toEqual([]);
  });
});

describe("compose.yaml", () => {
  it("keeps the project's rules: one web, two workers and Redis with persistence, targets of the Dockerfile", () => {
    expect(composeViolations(COMPOSE, DOCKERFILE, TARGETS)).toEqual([]);
  });

  const breakages: Array<[string, string, string, RegExp]> = [
    ["a target the Dockerfile lacks", "target: worker }", "target: cpu-worker }", /^service worker-\d: build target cpu-worker is not a final stage/],
    ["Redis without persistence", '"--appendonly", "yes", ', "", /^service redis: Redis without --appendonly yes/],
    ["REDIS_URL instead of QUEUE_URL", "QUEUE_URL: redis://redis:6379", "REDIS_URL: redis://redis:6379", /^service \S+: sets REDIS_URL/],
    ["two workers on one volume", '["worker-2-data:/data"]', '["worker-1-data:/data"]', /^two services share a \/data volume/],
    ["a secret written in", "HF_TOKEN: ${HF_TOKEN:?set HF_TOKEN (the bot's write token) in .env}", "HF_TOKEN: hf_written_in", /^service \S+: HF_TOKEN written in compose.yaml/],
    ["a GPU worker without a GPU", "driver: nvidia", "driver: none", /^service gpu-worker: no nvidia GPU reserved/],
  ];
  it.each(breakages)("sees %s", (_, from, to, expected) => {
    expect(COMPOSE.split(from).length - 1, `occurrences of ${JSON.stringify(from)}`).toBe(1);
    expect(composeViolations(COMPOSE.replace(from, to), DOCKERFILE, TARGETS)).toContainEqual(expect.stringMatching(expected));
  });

  it("refuses a file that is not compose YAML", () => {
    expect(() => composeViolations("services: [unclosed", DOCKERFILE, TARGETS)).toThrow();
    expect(composeViolations("services: {}", DOCKERFILE, TARGETS)).toEqual(
      expect.arrayContaining(["no Redis 7 service (image redis:7…)", "0 services on target space; expected one web process", "0 CPU worker services; expected at least two"]),
    );
  });
});
