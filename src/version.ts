import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** This package's root folder and package.json, found from here both in src/ and in dist/. */
const PACKAGE: { root: string; name: string; version: string } = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const { name, version } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name: string; version: string };
      if (name === "safe-lora") return { root: dir, name, version };
    } catch {
      // not here: look one folder up
    }
    const parent = dirname(dir);
    if (parent === dir) return { root: process.cwd(), name: "safe-lora", version: "unknown" };
    dir = parent;
  }
})();

/** This package's name and version. */
export const TOOL: { name: string; version: string } = { name: PACKAGE.name, version: PACKAGE.version };

/** The package's root folder (where package.json is), for the files it ships (the demo's tiny models). */
export const PACKAGE_ROOT = PACKAGE.root;
