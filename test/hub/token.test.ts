import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { findHubToken } from "../../src/hub/token.js";

const dir = mkdtempSync(join(tmpdir(), "safe-lora-token-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("findHubToken", () => {
  it("prefers HF_TOKEN", () => {
    expect(findHubToken({ HF_TOKEN: " hf_env \n", HF_TOKEN_PATH: "/nonexistent" })).toBe("hf_env");
  });

  it("reads the token file at HF_TOKEN_PATH, else $HF_HOME/token", () => {
    writeFileSync(join(dir, "token"), "hf_from_file\n");
    expect(findHubToken({ HF_TOKEN_PATH: join(dir, "token") })).toBe("hf_from_file");
    expect(findHubToken({ HF_HOME: dir })).toBe("hf_from_file");
  });

  it("finds none when there is neither", () => {
    expect(findHubToken({ HF_TOKEN_PATH: join(dir, "missing") })).toBeUndefined();
  });
});
