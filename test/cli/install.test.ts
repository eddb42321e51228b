import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));

describe("the install step", () => {
  // package.json "allowScripts" is read only by newer npm; npm 10 (Node 20's) ran onnxruntime-node's install
  // script, which downloads CUDA libraries. ignore-scripts in the project's .npmrc is read by every npm.
  it("runs no dependency's install script, whatever the npm", () => {
    const value = execFileSync("npm", ["config", "get", "ignore-scripts"], { cwd: root, encoding: "utf8", env: { ...process.env, npm_config_ignore_scripts: undefined } });
    expect(value.trim()).toBe("true");
  });
});
