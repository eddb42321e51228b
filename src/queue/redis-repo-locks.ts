import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import type { RepoLockRef, RepoLocks } from "./job-queue.js";

// Compare-and-act in one step on the server, so that a lock that ran out and was taken is never renewed or
// released by its old owner.
const RENEW = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;
const ACQUIRE = `local held = redis.call("GET", KEYS[1])
if held == false or held == ARGV[1] then redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2]) return 1 else return 0 end`;

/**
 * "One running job per repo" in Redis, for BullMQ, whose per-group concurrency is a paid feature: one key per
 * repo holding its owner, with a time to live (SET PX), renewed while the job runs. A worker that dies leaves
 * a key that runs out with its lease.
 */
export class RedisRepoLocks implements RepoLocks {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(lock: RepoLockRef): string {
    // Hashed: repo names are outside text, and a key must not grow with them.
    return `${this.prefix}:repo-lock:${createHash("sha256").update(JSON.stringify([lock.forge, lock.repo])).digest("hex").slice(0, 40)}`;
  }

  async acquire(lock: RepoLockRef & { owner: string; ttlMs: number }): Promise<boolean> {
    return (await this.redis.eval(ACQUIRE, 1, this.key(lock), lock.owner, Math.ceil(lock.ttlMs))) === 1;
  }

  async renew(lock: RepoLockRef & { owner: string; ttlMs: number }): Promise<boolean> {
    return (await this.redis.eval(RENEW, 1, this.key(lock), lock.owner, Math.ceil(lock.ttlMs))) === 1;
  }

  async release(lock: RepoLockRef & { owner: string }): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.key(lock), lock.owner);
  }
}
