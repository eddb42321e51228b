import { Redis, type RedisOptions } from "ioredis";

/** The URL without its password, for logs and errors. */
export const redactedUrl = (url: string): string => url.replace(/\/\/[^@/]*@/, "//…@");

/**
 * A connection for the bot's own keys and for producing jobs: it fails fast while Redis is away (an enqueue
 * then fails, the webhook answers 503 and the forge delivers it again), instead of queueing commands in memory.
 */
export const producerOptions: RedisOptions = { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true, connectTimeout: 5_000 };

/** A workers' connection, as BullMQ requires for blocking commands: commands wait for a reconnect. */
export const workerOptions = { maxRetriesPerRequest: null };

/** BullMQ's own connection for adding jobs: fails fast like producerOptions, as BullMQ advises for producers. */
export const bullProducerOptions = { maxRetriesPerRequest: 1, enableOfflineQueue: false };

/** Connects, or fails with the redacted URL in the message. */
export async function connectRedis(url: string): Promise<Redis> {
  const redis = new Redis(url, producerOptions);
  // ioredis reports every failed reconnect as an 'error' event: without a listener Node would crash on it.
  redis.on("error", () => {});
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new Error(`could not connect to the queue's Redis at ${redactedUrl(url)}: ${error instanceof Error ? error.message : String(error)}`);
  }
  return redis;
}
