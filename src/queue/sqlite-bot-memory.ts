import type Database from "better-sqlite3";
import type { ForgeName } from "../forge/forge.js";
import type { AdapterRef, BotMemory } from "./bot-memory.js";

/** The bot's memory in the bot's SQLite file (its tables: sqlite-schema.ts). */
export class SqliteBotMemory implements BotMemory {
  constructor(
    private readonly db: Database.Database,
    private readonly now: () => number = Date.now,
  ) {}

  async noteCoveredOwner({ forge, owner }: { forge: ForgeName; owner: string }): Promise<void> {
    this.db.prepare("INSERT OR IGNORE INTO covered_owners (forge, owner, first_seen) VALUES (?, ?, ?)").run(forge, owner.toLowerCase(), this.now());
  }

  async hasCoveredOwner({ forge, owner }: { forge: ForgeName; owner: string }): Promise<boolean> {
    return this.db.prepare("SELECT 1 FROM covered_owners WHERE forge = ? AND owner = ?").get(forge, owner.toLowerCase()) !== undefined;
  }

  async uninstall({ forge, names }: { forge: ForgeName; names: readonly string[] }): Promise<void> {
    const insert = this.db.prepare("INSERT OR IGNORE INTO uninstalled (forge, name, since) VALUES (?, ?, ?)");
    this.db.transaction(() => {
      for (const name of names) insert.run(forge, name.toLowerCase(), this.now());
    })();
  }

  async reinstall({ forge, names }: { forge: ForgeName; names: readonly string[] }): Promise<void> {
    const remove = this.db.prepare("DELETE FROM uninstalled WHERE forge = ? AND name = ?");
    this.db.transaction(() => {
      for (const name of names) remove.run(forge, name.toLowerCase());
    })();
  }

  async isUninstalled({ forge, repo }: { forge: ForgeName; repo: string }): Promise<boolean> {
    const name = repo.toLowerCase();
    return this.db.prepare("SELECT 1 FROM uninstalled WHERE forge = ? AND name IN (?, ?)").get(forge, name, name.split("/")[0]!) !== undefined;
  }

  async isStopped({ forge, repo, folder }: AdapterRef): Promise<boolean> {
    return this.db.prepare("SELECT 1 FROM stopped_adapters WHERE forge = ? AND repo = ? AND folder = ?").get(forge, repo, folder) !== undefined;
  }

  async stop({ forge, repo, folder }: AdapterRef): Promise<void> {
    this.db.prepare("INSERT OR IGNORE INTO stopped_adapters (forge, repo, folder, since) VALUES (?, ?, ?, ?)").run(forge, repo, folder, this.now());
  }

  async start({ forge, repo, folder }: AdapterRef): Promise<void> {
    this.db.prepare("DELETE FROM stopped_adapters WHERE forge = ? AND repo = ? AND folder = ?").run(forge, repo, folder);
  }

  async legacyAck({ forge, repo, commentId }: { forge: ForgeName; repo: string; commentId: string }): Promise<string | null> {
    const row = this.db.prepare("SELECT ack_id FROM legacy_acks WHERE forge = ? AND repo = ? AND comment_id = ?").get(forge, repo, commentId) as { ack_id: string } | undefined;
    return row?.ack_id ?? null;
  }
}
