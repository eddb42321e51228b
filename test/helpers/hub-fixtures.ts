import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalHub } from "../../src/local-hub/server.js";
import { folderFiles, seedRepo, type SeedFile } from "../../src/local-hub/seed.js";
import type { User } from "../../src/local-hub/store.js";
import { goldenPath } from "./golden.js";
import { shardCheckpoint } from "./shard.js";

export interface GoldenHub {
  hub: LocalHub;
  /** A user with a token, member of the adapter's organisation. */
  user: User;
  ids: { adapter: string; base: string; chat: string };
  /** A scratch folder for DATA_DIR, the CLI's alignment cache and outputs, removed by close(). */
  work: string;
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

/**
 * A local Hub holding a golden case as three repos, named as the adapter's config expects: the chat model
 * `test-org/<case>-chat` (its card naming `test-org/<case>-base` as base_model), the base model, and the
 * adapter `acme/<case>-lora`. With `sharded`, both models are stored as sharded checkpoints.
 */
export async function goldenHub(caseName: string, options: { sharded?: boolean } = {}): Promise<GoldenHub> {
  const work = mkdtempSync(join(tmpdir(), `safe-lora-hub-${caseName}-`));
  const hub = await new LocalHub().start();
  const user = hub.store.addUser("alice");
  hub.store.addOrg("acme", [user.id]);
  const ids = { adapter: `acme/${caseName}-lora`, base: `test-org/${caseName}-base`, chat: `test-org/${caseName}-chat` };

  const modelFiles = async (part: "base" | "chat"): Promise<SeedFile[]> => {
    if (!options.sharded) return folderFiles(goldenPath(caseName, part));
    const copy = join(work, `${part}-sharded`);
    cpSync(goldenPath(caseName, part), copy, { recursive: true });
    await shardCheckpoint(copy, part === "base" ? 3 : 2);
    return folderFiles(copy);
  };
  await seedRepo(hub, ids.base, await modelFiles("base"));
  await seedRepo(hub, ids.chat, [
    ...(await modelFiles("chat")),
    { path: "README.md", data: `---\nbase_model: ${ids.base}\nlibrary_name: transformers\n---\n# ${caseName} chat\n` },
  ]);
  await seedRepo(hub, ids.adapter, await folderFiles(goldenPath(caseName, "adapter")));
  return {
    hub,
    user,
    ids,
    work,
    env: { HF_ENDPOINT: hub.url, HF_TOKEN: user.token, DATA_DIR: join(work, "data"), SAFE_LORA_CACHE_DIR: join(work, "cache") },
    close: async () => {
      await hub.close();
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** Bytes the Hub served of a repo's weight files (shards, index), which is what range reads should minimise. */
export function weightBytesServed(hub: LocalHub, repo: string): number {
  return hub.bytesServed(repo, (path) => path.includes(".safetensors"));
}
