// vitest globalSetup: the tests that need Redis (the BullMQ queue) talk to the server on 127.0.0.1:6379 when one
// answers there, else to a redis-server this setup starts on a free port and stops at the end. Each test keeps
// its keys under a prefix of its own and deletes them (test/helpers/redis.ts).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

const DEFAULT = { host: "127.0.0.1", port: 6379 };

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const given = process.env.SAFE_LORA_TEST_REDIS_URL;
  if (given) {
    project.provide("redisUrl", given);
    return async () => {};
  }
  if (await answersPing(DEFAULT.host, DEFAULT.port)) {
    project.provide("redisUrl", `redis://${DEFAULT.host}:${DEFAULT.port}`);
    return async () => {};
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "safe-lora-redis-"));
  let server: ChildProcess;
  try {
    server = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: "ignore" });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error) => reject(new Error(`no Redis answers on ${DEFAULT.host}:${DEFAULT.port} and redis-server could not be started (${error.message}): install Redis (apt install redis-server) or set SAFE_LORA_TEST_REDIS_URL`)));
      server.once("spawn", () => resolve());
    });
    const deadline = Date.now() + 10_000;
    while (!(await answersPing("127.0.0.1", port))) {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within 10 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  console.log(`test/global-redis: no Redis on ${DEFAULT.host}:${DEFAULT.port}; started redis-server on port ${port} for these tests`);
  project.provide("redisUrl", `redis://127.0.0.1:${port}`);
  return async () => {
    server.kill("SIGTERM");
    await new Promise((resolve) => (server.exitCode !== null ? resolve(null) : server.once("exit", resolve)));
    rmSync(dir, { recursive: true, force: true });
  };
}

/** Whether a Redis server answers PING at host:port within a second. */
function answersPing(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) => done(data.toString("utf8").startsWith("+PONG")));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

declare module "vitest" {
  export interface ProvidedContext {
    /** The Redis server the tests use (global-redis.ts). */
    redisUrl: string;
  }
}
