// The project's rules for its Dockerfile and compose.yaml, checked on their text (README.md, "Deploying").
// dockerfile-utils lints the syntax; these say what the images must be: who runs them, what goes in, on what base.
import { parse as parseYaml } from "yaml";

export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

export interface Stage {
  /** The `AS` name, or the stage's index when it has none. */
  name: string;
  /** The FROM argument with ARG defaults filled in. */
  from: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  globalArgs: Map<string, string>;
  stages: Stage[];
}

/** Instructions with their continuation lines joined; comment lines (also inside a continuation) dropped. */
function instructions(text: string): Instruction[] {
  const result: Instruction[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split(/\r?\n/).forEach((raw, index) => {
    const trimmed = raw.trim();
    if (trimmed.startsWith("#") || (trimmed === "" && !pending)) return;
    const continued = trimmed.endsWith("\\");
    const part = continued ? trimmed.slice(0, -1) : trimmed;
    pending = pending ? { text: `${pending.text} ${part}`, line: pending.line } : { text: part, line: index + 1 };
    if (continued) return;
    const [keyword = "", ...rest] = pending.text.trim().split(/\s+/);
    result.push({ keyword: keyword.toUpperCase(), args: rest.join(" "), line: pending.line });
    pending = undefined;
  });
  return result;
}

function substitute(value: string, args: Map<string, string>): string {
  return value.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced: string | undefined, bare: string | undefined) => args.get((braced ?? bare)!) ?? whole);
}

export function parseDockerfile(text: string): Dockerfile {
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of instructions(text)) {
    if (instruction.keyword === "ARG" && stages.length === 0) {
      const [name = "", value = ""] = instruction.args.split("=", 2);
      globalArgs.set(name, value.replace(/^"(.*)"$/, "$1"));
    } else if (instruction.keyword === "FROM") {
      const words = instruction.args.split(/\s+/).filter((word) => !word.startsWith("--"));
      const asAt = words.findIndex((word) => word.toUpperCase() === "AS");
      const name = asAt >= 0 ? words[asAt + 1]! : String(stages.length);
      stages.push({ name, from: substitute(words[0] ?? "", globalArgs), instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return { globalArgs, stages };
}

function copyFrom(instruction: Instruction): string | undefined {
  return instruction.keyword === "COPY" ? /--from=(\S+)/.exec(instruction.args)?.[1] : undefined;
}

/** A COPY's sources (everything but its flags and its destination). */
function copySources(instruction: Instruction): string[] {
  const words = instruction.args.split(/\s+/).filter((word) => !word.startsWith("--"));
  return words.slice(0, -1);
}

/** A stage and the stages it is built FROM, base first. */
function chainOf(file: Dockerfile, stage: Stage): Stage[] {
  const parent = file.stages.find((other) => other.name === stage.from);
  return parent && parent !== stage ? [...chainOf(file, parent), stage] : [stage];
}

/** The image a stage ends up on, through its FROM stages. */
function baseImageOf(file: Dockerfile, stage: Stage): string {
  return chainOf(file, stage)[0]!.from;
}

/** A stage's chain and, recursively, the chains of the stages it copies from (each once). */
function contentOf(file: Dockerfile, stage: Stage, seen = new Set<string>()): Stage[] {
  const result: Stage[] = [];
  for (const link of chainOf(file, stage)) {
    if (seen.has(link.name)) continue;
    seen.add(link.name);
    result.push(link);
    for (const name of link.instructions.map(copyFrom)) {
      const source = file.stages.find((other) => other.name === name);
      if (source) result.push(...contentOf(file, source, seen));
    }
  }
  return result;
}

/** Stages no other stage builds on or copies from: the targets someone runs. */
export function finalStages(file: Dockerfile): Stage[] {
  const used = new Set(file.stages.flatMap((stage) => [stage.from, ...stage.instructions.map(copyFrom).filter((name) => name !== undefined)]));
  return file.stages.filter((stage) => !used.has(stage.name));
}

function lastOf(chain: Stage[], keyword: string): Instruction | undefined {
  return chain.flatMap((stage) => stage.instructions).filter((instruction) => instruction.keyword === keyword).at(-1);
}

const runs = (chain: Stage[]): Instruction[] => chain.flatMap((stage) => stage.instructions).filter((instruction) => instruction.keyword === "RUN");

/** Users a chain creates with uid 1000 (`useradd --uid 1000 … name`), by name. */
function uid1000Names(chain: Stage[]): Set<string> {
  const names = new Set<string>();
  for (const { args } of runs(chain)) {
    for (const match of args.matchAll(/useradd\b([^;&|]*)/g)) {
      const words = match[1]!.trim().split(/\s+/);
      const uidAt = words.findIndex((word) => word === "-u" || word === "--uid");
      if (uidAt >= 0 && words[uidAt + 1] === "1000") names.add(words.at(-1)!);
    }
  }
  return names;
}

/** Whether the chain's node_modules can hold only production dependencies: every install omits dev, or is pruned after. */
function productionInstall(chain: Stage[]): boolean {
  let installed = false;
  let dev = false;
  for (const { args } of runs(chain)) {
    for (const command of args.split(/&&|;/)) {
      if (/\bnpm (ci|install|i)\b/.test(command)) {
        installed = true;
        dev = !/--omit=dev|--production\b/.test(command);
      } else if (/\bnpm prune\b/.test(command) && /--omit=dev|--production\b/.test(command)) {
        dev = false;
      }
    }
  }
  return installed && !dev;
}

export interface Targets {
  /** The Hugging Face Docker Space's target; it must be the last stage, the one a Space builds. */
  space: string;
  /** The GPU worker's target, on a CUDA image with onnxruntime's CUDA provider. */
  gpu: string;
}

/** Each broken rule as a sentence naming the stage and what to do; [] when the Dockerfile keeps them all. */
export function dockerfileViolations(text: string, targets: Targets): string[] {
  const file = parseDockerfile(text);
  const problems: string[] = [];
  const finals = finalStages(file);
  const byName = new Map(file.stages.map((stage) => [stage.name, stage]));

  for (const stage of file.stages) {
    const node = /^(?:docker\.io\/)?(?:library\/)?node:(\d+)/.exec(stage.from);
    if (node && !["22", "24"].includes(node[1]!)) problems.push(`stage ${stage.name}: FROM ${stage.from} is not a maintained Node LTS (22 or 24)`);
    for (const instruction of stage.instructions) {
      if ((instruction.keyword === "ENV" || instruction.keyword === "ARG") && /(TOKEN|SECRET|PASSWORD)\w*\s*=/i.test(instruction.args))
        problems.push(`stage ${stage.name}, line ${instruction.line}: ${instruction.keyword} bakes a secret into the image; pass it at run time`);
    }
  }
  for (const [name, value] of file.globalArgs) {
    if (/TOKEN|SECRET|PASSWORD/i.test(name)) problems.push(`ARG ${name}=${value} bakes a secret into the image; pass it at run time`);
  }

  for (const stage of finals) {
    const chain = chainOf(file, stage);
    const user = lastOf(chain, "USER")?.args.split(":")[0];
    if (user === undefined) problems.push(`target ${stage.name}: no USER; run as uid 1000 (USER 1000:1000)`);
    else if (user !== "1000" && !uid1000Names(chain).has(user)) problems.push(`target ${stage.name}: USER ${user} is not uid 1000`);
    if (!lastOf(chain, "HEALTHCHECK")) problems.push(`target ${stage.name}: no HEALTHCHECK; add one, or HEALTHCHECK NONE with a comment saying why`);

    const installs = runs(chain).some(({ args }) => /\bnpm (ci|install|i)\b/.test(args));
    if (installs && !productionInstall(chain)) problems.push(`target ${stage.name}: an npm install with dev dependencies in the production image; use npm ci --omit=dev`);
    let dependencies = installs && productionInstall(chain);
    // What lands in the image: its own chain and, through COPY --from, the stages it copies from.
    for (const instruction of contentOf(file, stage).flatMap((link) => link.instructions)) {
      const sources = instruction.keyword === "COPY" || instruction.keyword === "ADD" ? copySources(instruction) : [];
      if (copyFrom(instruction) === undefined && sources.some((path) => /^\.\/?$|^(\.\/)?test(\/|$)|fixtures/.test(path)))
        problems.push(`target ${stage.name}, line ${instruction.line}: ${instruction.keyword} ${instruction.args} puts the build context or test fixtures in a production image; copy the paths it runs from`);
    }
    for (const instruction of chain.flatMap((link) => link.instructions)) {
      const sources = instruction.keyword === "COPY" ? copySources(instruction) : [];
      const source = copyFrom(instruction);
      if (source !== undefined && sources.some((path) => path.includes("node_modules"))) {
        const from = byName.get(source);
        if (from && productionInstall(chainOf(file, from))) dependencies = true;
        else problems.push(`target ${stage.name}, line ${instruction.line}: node_modules from ${source}, which does not install with npm ci --omit=dev (or npm prune --omit=dev)`);
      }
    }
    if (!dependencies) problems.push(`target ${stage.name}: no production dependencies (npm ci --omit=dev, or node_modules copied from a stage that runs it)`);
  }

  const space = byName.get(targets.space);
  if (!space) problems.push(`no target ${targets.space} (the Hugging Face Space)`);
  else {
    const chain = chainOf(file, space);
    if (file.stages.at(-1) !== space) problems.push(`target ${targets.space} is not the last stage: a Space builds the Dockerfile without --target`);
    if (!chain.some((link) => link.instructions.some(({ keyword, args }) => keyword === "EXPOSE" && args.split(/\s+/).includes("7860"))))
      problems.push(`target ${targets.space}: no EXPOSE 7860 (the port Spaces route to)`);
    const health = lastOf(chain, "HEALTHCHECK");
    if (!health || /^NONE\b/i.test(health.args) || !health.args.includes("/healthz")) problems.push(`target ${targets.space}: its HEALTHCHECK must ask /healthz`);
    if (!chain.some((link) => link.instructions.some(({ keyword, args }) => keyword === "ENV" && /(^|\s)DATA_DIR=\/data(\s|$)/.test(args))))
      problems.push(`target ${targets.space}: ENV DATA_DIR=/data missing (a Space's persistent storage)`);
  }

  const gpu = byName.get(targets.gpu);
  if (!gpu) problems.push(`no target ${targets.gpu} (the GPU worker)`);
  else if (!/^(?:docker\.io\/)?nvidia\/cuda:12\.[\d.]+-cudnn[-\w.]*$/.test(baseImageOf(file, gpu)))
    problems.push(`target ${targets.gpu}: FROM ${baseImageOf(file, gpu)} is not a CUDA 12 image with cuDNN (nvidia/cuda:12.x-cudnn-runtime-…)`);

  // onnxruntime's CUDA libraries are fetched for the GPU worker only: what the others copy must not run that switch.
  for (const stage of finals) {
    const copied = chainOf(file, stage).flatMap((link) => link.instructions.map(copyFrom)).filter((name) => name !== undefined);
    const chains = [chainOf(file, stage), ...copied.map((name) => byName.get(name)).filter((other) => other !== undefined).map((other) => chainOf(file, other))];
    const cuda = chains.some((links) => runs(links).some(({ args }) => /ONNXRUNTIME_NODE_INSTALL(_CUDA)?=(cuda12|1|true)|onnxruntime-node-install=cuda12/.test(args)));
    if (stage.name === targets.gpu && !cuda) problems.push(`target ${stage.name}: nothing installs onnxruntime's CUDA 12 provider (ONNXRUNTIME_NODE_INSTALL=cuda12)`);
    if (stage.name !== targets.gpu && cuda) problems.push(`target ${stage.name}: installs onnxruntime's CUDA provider; only ${targets.gpu} should`);
  }
  return problems;
}

interface ComposeService {
  image?: string;
  build?: { context?: string; target?: string } | string;
  environment?: Record<string, string | number | null> | string[];
  volumes?: Array<string | { source?: string; target?: string }>;
  command?: string | string[];
  profiles?: string[];
  deploy?: { resources?: { reservations?: { devices?: Array<{ driver?: string; capabilities?: string[] }> } } };
}

function environmentOf(service: ComposeService): Map<string, string> {
  const env = service.environment ?? {};
  const pairs = Array.isArray(env) ? env.map((line) => line.split("=", 2) as [string, string?]) : Object.entries(env);
  return new Map(pairs.map(([name, value]) => [name, value === undefined || value === null ? "" : String(value)]));
}

function dataVolume(service: ComposeService): string | undefined {
  for (const volume of service.volumes ?? []) {
    const [source, target] = typeof volume === "string" ? volume.split(":") : [volume.source, volume.target];
    if (target === "/data") return source;
  }
  return undefined;
}

/** compose.yaml's rules: web + workers + Redis with persistence, targets that exist, secrets from the environment. */
export function composeViolations(text: string, dockerfile: string, targets: Targets): string[] {
  const problems: string[] = [];
  const doc = parseYaml(text, { merge: true }) as { services?: Record<string, ComposeService> } | null;
  const services = doc?.services ?? {};
  const stages = new Set(finalStages(parseDockerfile(dockerfile)).map((stage) => stage.name));

  for (const [name, service] of Object.entries(services)) {
    const build = typeof service.build === "string" ? { context: service.build } : service.build;
    if (build) {
      if (!build.target || !stages.has(build.target)) problems.push(`service ${name}: build target ${build.target ?? "(none)"} is not a final stage of the Dockerfile (${[...stages].join(", ")})`);
    } else if (!service.image) problems.push(`service ${name}: neither build nor image`);
    const env = environmentOf(service);
    if (env.has("REDIS_URL")) problems.push(`service ${name}: sets REDIS_URL, which Probot reads for itself; the queue is QUEUE_URL`);
    for (const secret of ["HF_TOKEN", "HF_WEBHOOK_SECRET", "STATUS_TOKEN"]) {
      const value = env.get(secret);
      if (value !== undefined && !value.startsWith("${")) problems.push(`service ${name}: ${secret} written in compose.yaml; take it from .env (\${${secret}})`);
    }
  }

  const redis = Object.entries(services).find(([, service]) => /^(docker\.io\/)?(library\/)?redis:7/.test(service.image ?? ""));
  if (!redis) problems.push("no Redis 7 service (image redis:7…)");
  else {
    const [name, service] = redis;
    const command = Array.isArray(service.command) ? service.command.join(" ") : (service.command ?? "");
    if (!/--appendonly\s+yes/.test(command)) problems.push(`service ${name}: Redis without --appendonly yes loses the queue on a restart`);
    if (!dataVolume(service)) problems.push(`service ${name}: no volume on /data for the append-only file`);
    const url = `redis://${name}:6379`;
    for (const [other, service] of Object.entries(services)) {
      if (service.build && environmentOf(service).get("QUEUE_URL") !== url) problems.push(`service ${other}: QUEUE_URL is not ${url}`);
    }
  }

  const targetOf = (service: ComposeService): string | undefined => (typeof service.build === "object" ? service.build.target : undefined);
  const web = Object.entries(services).filter(([, service]) => targetOf(service) === targets.space);
  if (web.length !== 1) problems.push(`${web.length} services on target ${targets.space}; expected one web process`);
  const workers = Object.entries(services).filter(([, service]) => targetOf(service) === "worker" && !service.profiles);
  if (workers.length < 2) problems.push(`${workers.length} CPU worker services; expected at least two`);
  const built = Object.entries(services).filter(([, service]) => service.build);
  const volumes = built.map(([name, service]) => [name, dataVolume(service)] as const);
  for (const [name, volume] of volumes) if (!volume) problems.push(`service ${name}: no volume on /data (its own DATA_DIR)`);
  const named = volumes.map(([, volume]) => volume).filter((volume) => volume !== undefined);
  if (new Set(named).size !== named.length) problems.push("two services share a /data volume; each process needs its own DATA_DIR");

  const gpu = Object.entries(services).find(([, service]) => targetOf(service) === targets.gpu);
  if (gpu) {
    const [name, service] = gpu;
    if (!service.profiles?.length) problems.push(`service ${name}: the GPU worker should be behind a profile (not every host has a GPU)`);
    const devices = service.deploy?.resources?.reservations?.devices ?? [];
    if (!devices.some((device) => device.driver === "nvidia" && device.capabilities?.includes("gpu"))) problems.push(`service ${name}: no nvidia GPU reserved (deploy.resources.reservations.devices)`);
  }
  return problems;
}
