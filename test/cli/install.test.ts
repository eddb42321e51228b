import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));

describe("the install step (issue 7 item 18)", () => {
  // npm 10 (Node 20's) ignores package.json "allowScripts" and ran onnxruntime-node's install script, which
  // downloads CUDA libraries. The project's .npmrc sets the flag that script reads; npm hands it to every
  // script it runs, on npm 10 and 11 alike. This asks onnxruntime-node's own flag parser, under npm.
  it("makes onnxruntime-node's install script skip its download under any npm", () => {
    const env = { ...process.env };
    for (const key of Object.keys(env)) if (/^(npm_config_onnxruntime|ONNXRUNTIME_NODE_INSTALL)/i.test(key)) delete env[key];
    const decision = execFileSync("npm", ["exec", "-c", `node -e "console.log(require('onnxruntime-node/script/install-utils.js').parseInstallFlag())"`], {
      cwd: root,
      encoding: "utf8",
      env,
      stdio: ["ignore", "pipe", "ignore"],
    });
    expect(decision.trim()).toBe("false");
  });

  it("and newer npm is told by allowScripts not to run it at all, while better-sqlite3's runs", () => {
    const { allowScripts } = JSON.parse(readFileSync(new URL("package.json", `file://${root}/`), "utf8")) as { allowScripts: Record<string, boolean> };
    expect(allowScripts).toMatchObject({ "onnxruntime-node": false, "better-sqlite3": true });
  });
});
