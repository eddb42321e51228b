import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBotContext } from "../../src/app/create-bot-context.js";
import { onForge, type BotContext, type JobContext } from "../../src/bot/context.js";
import { loadEnv } from "../../src/config/env.js";
import { forgeRegistry } from "../../src/forge/forge.js";
import type { HubAccess } from "../../src/hub/hub-access.js";
import type { Job } from "../../src/queue/job-queue.js";
import { inSubfolder } from "../../src/storage/repo-files.js";
import { goldenPath } from "../helpers/golden.js";
import { MemoryForge, type MemoryFile } from "../helpers/memory-forge.js";

/** The repo the unit tests' adapters live in, and its organisation's member who commands the bot. */
export const REPO = "acme/lora";
export const MEMBER = "alice";
export const OUTSIDER = "mallory";

export interface BotTest {
  /** The bot's context, on a fresh queue and memory in a temporary DATA_DIR. */
  readonly context: BotContext;
  /** The forge the repos live on (acme, with alice, owns REPO). */
  readonly forge: MemoryForge;
  /** The context a job on `forge` runs with. */
  readonly job: JobContext;
  /** The stored jobs, oldest first. */
  jobs(): Promise<Job[]>;
  close(): Promise<void>;
}

/**
 * The bot's context on an in-memory forge, built by the composition root as `serve` builds it (SQLite queue
 * and memory in a temporary DATA_DIR). `botConfig` is BOT_CONFIG's text; `hub` is where base and aligned
 * models are read (default: nowhere, for jobs that read none).
 */
export async function botTest(options: { botConfig?: string; hub?: HubAccess; files?: Record<string, MemoryFile> } = {}): Promise<BotTest> {
  const work = mkdtempSync(join(tmpdir(), "safe-lora-bot-unit-"));
  const botConfig = join(work, "bot-config.yaml");
  writeFileSync(botConfig, options.botConfig ?? 'select: "threshold:0.33"\nallowModelTree: true\n');
  const forge = new MemoryForge();
  forge.addOrg("acme", [MEMBER]);
  forge.createRepo({ repo: REPO, files: options.files ?? { "README.md": "---\nlicense: apache-2.0\n---\n# An adapter repo\n" } });
  const context = await createBotContext(loadEnv({ DATA_DIR: join(work, "data"), LOG_LEVEL: "silent", BOT_CONFIG: botConfig }), {
    forges: forgeRegistry([forge]),
    hub: options.hub ?? { hubUrl: "http://127.0.0.1:9" },
    tokenEnv: {},
    cache: null,
  });
  return {
    context,
    forge,
    job: onForge(context, forge),
    jobs: async () => (await context.queue.recent(1000)).reverse(),
    async close() {
      await context.queue.close();
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** A golden case's adapter files (its generated README left out), under `folder` ("." for the root). */
export function goldenAdapter(folder = ".", caseName = "llama-gqa-qv"): Record<string, Uint8Array> {
  const dir = goldenPath(caseName, "adapter");
  return Object.fromEntries(readdirSync(dir).filter((name) => name !== "README.md").map((name) => [inSubfolder(folder, name), readFileSync(join(dir, name))]));
}

/** An adapter_config.json that scans as LoRA (a scan reads no weights). */
export const LORA_CONFIG = JSON.stringify({ peft_type: "LORA", base_model_name_or_path: "test-org/llama-gqa-qv-chat", r: 4, target_modules: ["q_proj"] });
