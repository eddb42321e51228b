import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** This package's name and version, read from its package.json (found from here both in src/ and in dist/). */
export const TOOL: { name: string; version: string } = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const { name, version } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name: string; version: string };
      if (name === "safe-lora") return { name, version };
    } catch {
      // not here: look one folder up
    }
    const parent = dirname(dir);
    if (parent === dir) return { name: "safe-lora", version: "unknown" };
    dir = parent;
  }
})();
