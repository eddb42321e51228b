import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BotWorld } from "../helpers/bot-world.js";
import { until } from "../helpers/until.js";

/** A Redis server of this test's own, so that it can be stopped under the bot. */
async function ownRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port: free } = probe.address() as { port: number };
      probe.close(() => resolve(free));
    });
  });
  const dir = mkdtempSync(join(tmpdir(), "safe-lora-own-redis-"));
  const server: ChildProcess = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: "ignore" });
  const url = `redis://127.0.0.1:${port}`;
  const { Redis } = await import("ioredis");
  await until(
    async () => {
      const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on("error", () => {});
      try {
        await probe.connect();
        return (await probe.ping()) === "PONG";
      } catch {
        return false;
      } finally {
        probe.disconnect();
      }
    },
    (up) => up,
  );
  return {
    url,
    async stop() {
      if (server.exitCode === null && server.signalCode === null) {
        const exited = new Promise((resolve) => server.once("exit", resolve));
        server.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let world: BotWorld;
let redis: Awaited<ReturnType<typeof ownRedis>>;
beforeEach(async () => {
  world = await BotWorld.create();
  redis = await ownRedis();
});
afterEach(async () => {
  await world.close();
  await redis.stop();
});

describe("the bot on BullMQ when its Redis goes away", () => {
  it("answers a webhook 503 (the Hub delivers it again) instead of hanging or losing it, /healthz says why, and it stops at once", async () => {
    await world.startBot({ QUEUE_URL: redis.url, SAFE_LORA_QUEUE_PREFIX: "down-test", STATUS_TOKEN: "ops" });
    await redis.stop();
    await world.pushAdapter();
    await world.hub.webhooks.settled();
    expect(world.hub.webhooks.deliveries.map((delivery) => delivery.status)).toEqual([503]);
    const port = world.bot!.port!;
    const health = await fetch(`http://127.0.0.1:${port}/healthz?token=ops`);
    expect(health.status).toBe(503);
    expect(((await health.json()) as { reason: string }).reason).toMatch(new RegExp(`^the queue's Redis at ${redis.url.replace(/[.]/g, "\\.")} is (connecting|reconnecting|close|end)$`));
    // SIGTERM's drain does not wait for a Redis that is gone (the hook's 10 s would fail the test).
    await world.bot!.stop();
    world.bot = null;
  });
});
