import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The projection tests run real onnxruntime sessions; give slow CI machines room.
    testTimeout: 60_000,
  },
});
