import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The BullMQ tests' Redis: 127.0.0.1:6379 when it answers, else a redis-server started for the run.
    globalSetup: ["test/global-redis.ts"],
    // The projection tests run real onnxruntime sessions; give slow CI machines room.
    testTimeout: 60_000,
  },
});
