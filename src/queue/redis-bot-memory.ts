import type { Redis } from "ioredis";
import type { ForgeName } from "../forge/forge.js";
import type { AdapterRef, BotMemory } from "./bot-memory.js";

/**
 * The bot's memory in the queue's Redis, shared by the web process and every worker on every machine: one set
 * of stopped adapters and one of covered owners, members JSON-encoded so that no name can be mistaken for
 * another. The first release's acknowledgements were only ever in a SQLite file: there are none to carry here.
 */
export class RedisBotMemory implements BotMemory {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private get stoppedKey() {
    return `${this.prefix}:stopped-adapters`;
  }
  private get ownersKey() {
    return `${this.prefix}:covered-owners`;
  }

  async noteCoveredOwner({ forge, owner }: { forge: ForgeName; owner: string }): Promise<void> {
    await this.redis.sadd(this.ownersKey, JSON.stringify([forge, owner.toLowerCase()]));
  }

  async hasCoveredOwner({ forge, owner }: { forge: ForgeName; owner: string }): Promise<boolean> {
    return (await this.redis.sismember(this.ownersKey, JSON.stringify([forge, owner.toLowerCase()]))) === 1;
  }

  private get uninstalledKey() {
    return `${this.prefix}:uninstalled`;
  }

  async uninstall({ forge, names }: { forge: ForgeName; names: readonly string[] }): Promise<void> {
    if (names.length > 0) await this.redis.sadd(this.uninstalledKey, ...names.map((name) => JSON.stringify([forge, name.toLowerCase()])));
  }

  async reinstall({ forge, names }: { forge: ForgeName; names: readonly string[] }): Promise<void> {
    if (names.length > 0) await this.redis.srem(this.uninstalledKey, ...names.map((name) => JSON.stringify([forge, name.toLowerCase()])));
  }

  async isUninstalled({ forge, repo }: { forge: ForgeName; repo: string }): Promise<boolean> {
    const name = repo.toLowerCase();
    const found = await this.redis.smismember(this.uninstalledKey, JSON.stringify([forge, name]), JSON.stringify([forge, name.split("/")[0]!]));
    return found.includes(1);
  }

  async isStopped({ forge, repo, folder }: AdapterRef): Promise<boolean> {
    return (await this.redis.sismember(this.stoppedKey, JSON.stringify([forge, repo, folder]))) === 1;
  }

  async stop({ forge, repo, folder }: AdapterRef): Promise<void> {
    await this.redis.sadd(this.stoppedKey, JSON.stringify([forge, repo, folder]));
  }

  async start({ forge, repo, folder }: AdapterRef): Promise<void> {
    await this.redis.srem(this.stoppedKey, JSON.stringify([forge, repo, folder]));
  }

  async legacyAck(): Promise<string | null> {
    return null;
  }
}
