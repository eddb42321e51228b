import { afterAll } from "vitest";
import { BullMqJobQueue } from "../../src/queue/bullmq-queue.js";
import { deleteRedisPrefix, testRedisPrefix, testRedisUrl } from "../helpers/redis.js";
import { describeJobQueueContract } from "./queue-contract.js";

// Every queue of this file under one prefix of its own on the test run's Redis, deleted at the end.
const prefixes: string[] = [];
afterAll(async () => {
  for (const prefix of prefixes) await deleteRedisPrefix(prefix);
});

let last: string | null = null;
describeJobQueueContract(
  "BullMQ on Redis",
  async () => {
    last = testRedisPrefix("contract");
    prefixes.push(last);
    return BullMqJobQueue.connect({ url: testRedisUrl(), prefix: last });
  },
  // The same Redis keys, opened again: what a restarted process sees.
  async () => BullMqJobQueue.connect({ url: testRedisUrl(), prefix: last! }),
);
