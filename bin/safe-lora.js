#!/usr/bin/env node
// The `safe-lora` command. It runs the compiled CLI that `npm install` builds (the "prepare" script).
import { existsSync } from "node:fs";

const entry = new URL("../dist/src/cli/bin.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("safe-lora: the CLI is not built yet; run `npm install` (or `npm run build`) in the project folder\n");
  process.exit(1);
}
await import(entry.href);
