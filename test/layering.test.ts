import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * The layers, low → high (README.md, "Project layout"). A file may import from its own layer and the ones
 * below it, never from one above. Folders of src/ by name; the files at src/'s top by file name.
 */
const LAYERS: ReadonlyArray<readonly string[]> = [
  ["errors.ts", "version.ts", "did-you-mean.ts", "http-basics.ts"],
  ["storage"],
  ["safetensors"],
  ["peft", "projection", "llama"],
  ["report", "forge", "queue"],
  ["hub", "github", "behaviour"],
  ["local-hub", "local-github", "local-inference"],
  ["pipeline"],
  ["commands", "config"],
  ["bot"],
  ["server"],
  ["app", "cli", "workers"],
];

const rankOf = new Map(LAYERS.flatMap((names, rank) => names.map((name) => [name, rank] as const)));

/** The layer name of a file under src/ (its folder, or its own name at src/'s top) or under workers/. */
function layerOf(path: string): string {
  const [top, ...rest] = relative(ROOT, path).split(/[\\/]/);
  if (top === "workers") return "workers";
  if (top !== "src") throw new Error(`${path} is outside src/ and workers/`);
  // Imports name the compiled file (`../errors.js`): its layer is the source file's.
  return rest[0]!.replace(/\.js$/, ".ts");
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** Every relative import, export-from and dynamic import of a file, as absolute paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["'](\.[^"']+)["']/gm)].map((match) => match[1]!);
  return specifiers.map((specifier) => resolve(dirname(file), specifier));
}

const FILES = [...sourceFiles(join(ROOT, "src")), ...sourceFiles(join(ROOT, "workers"))];

/** The layout table of README.md: per row its layer and its folders (`bot/`) or files (`src/errors.ts`). */
function readmeLayers(): Array<[number, string[]]> {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Project layout"), readme.indexOf("## Licence"));
  return [...section.matchAll(/^\| (\d+) \| ([^|]+) \|/gm)].map((row) => [
    Number(row[1]),
    [...row[2]!.matchAll(/`([^`]+)`/g)].map((name) => name[1]!.replace(/^src\//, "").replace(/\/$/, "")),
  ]);
}

describe("the layering", () => {
  it("is the one README.md's layout section describes", () => {
    const documented = LAYERS.map(() => [] as string[]);
    for (const [rank, names] of readmeLayers()) documented[rank]!.push(...names);
    expect(documented).toEqual(LAYERS.map((names) => [...names]));
  });

  it("has every folder of src/ in the table", () => {
    const layers = new Set(FILES.map(layerOf));
    expect([...layers].filter((layer) => !rankOf.has(layer))).toEqual([]);
  });

  it("finds the imports it checks (the pattern reads this project's import statements)", () => {
    const found = importsOf(join(ROOT, "src", "cli", "main.ts")).map((path) => relative(ROOT, path));
    expect(found).toContain("src/errors.js");
    expect(found.length).toBeGreaterThan(3);
  });

  it("has no import from a lower layer to a higher one", () => {
    const upward: string[] = [];
    for (const file of FILES) {
      const from = layerOf(file);
      for (const target of importsOf(file)) {
        const to = layerOf(target);
        if ((rankOf.get(to) ?? Infinity) > (rankOf.get(from) ?? -Infinity)) upward.push(`${relative(ROOT, file)} (${from}) imports ${relative(ROOT, target)} (${to})`);
      }
    }
    expect(upward).toEqual([]);
  });
});
