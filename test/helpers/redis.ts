import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { inject } from "vitest";

/** The Redis server of this test run: 127.0.0.1:6379 when it answers, else one test/global-redis.ts started. */
export function testRedisUrl(): string {
  return inject("redisUrl");
}

/** A key prefix no other test (or bot) uses on that server. */
export function testRedisPrefix(name = "test"): string {
  return `safe-lora-test-${name}-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** Deletes every key under `prefix` (a test's own), with SCAN rather than KEYS so that a shared server is not blocked. */
export async function deleteRedisPrefix(prefix: string, url = testRedisUrl()): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  let deleted = 0;
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
  return deleted;
}
