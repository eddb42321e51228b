import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalHub } from "../../src/local-hub/server.js";
import { folderFiles, seedReferencePair, seedRepo } from "../../src/local-hub/seed.js";
import { GOLDEN_DIR, goldenPath } from "../helpers/golden.js";
import { readAllTensors } from "../helpers/tensors.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
// Asynchronous: the local Hub answers from this process, so a synchronous child would wait on it forever.
const run = promisify(execFile);

/**
 * Issue 8 item 12: the card's "Reproduce" command, run as printed by someone outside the clone with the
 * `safe-lora` command installed as the README says (`npm install -g .`, here into a private prefix and without
 * the network), makes the same variant from the same pinned Hub revisions — including a non-default Hub.
 */
describe("the card's reproduce command", () => {
  let hub: LocalHub;
  const work = mkdtempSync(join(tmpdir(), "safe-lora-reproduce-"));
  const prefix = join(work, "prefix");
  const env = () => ({
    ...process.env,
    PATH: `${join(prefix, "bin")}:${process.env.PATH}`,
    HOME: work,
    XDG_CACHE_HOME: join(work, "cache"),
    HF_TOKEN_PATH: "/nonexistent/safe-lora-test-token",
    HF_ENDPOINT: "http://127.0.0.1:9",
    HF_TOKEN: "",
  });

  beforeAll(async () => {
    hub = await new LocalHub().start();
    await seedReferencePair(hub, GOLDEN_DIR, "llama-gqa-qv");
    await seedRepo(hub, "acme/gqa-lora", (await folderFiles(goldenPath("llama-gqa-qv", "adapter"))).filter((file) => file.path !== "README.md"));
    execFileSync("npm", ["install", "--global", ".", "--prefix", prefix, "--offline", "--no-audit", "--no-fund"], { cwd: ROOT, stdio: "ignore" });
  }, 120_000);
  afterAll(async () => {
    await hub.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("run as printed, outside the clone, writes the same variant", async () => {
    const first = join(work, "first");
    await run("safe-lora", ["patch", "--adapter", "acme/gqa-lora", "--hub-url", hub.url, "--select", "threshold:0.33", "--out", first], { cwd: work, env: env() });
    const card = readFileSync(join(first, "README.md"), "utf8");
    const command = /## Reproduce[\s\S]*?```bash\n([^\n]+)\n```/.exec(card)?.[1];
    expect(command).toMatch(/^safe-lora patch --hub-url http:\/\/127\.0\.0\.1:\d+ --adapter acme\/gqa-lora@[0-9a-f]{40} --base test-org\/llama-gqa-qv-base@[0-9a-f]{40} --aligned test-org\/llama-gqa-qv-chat@[0-9a-f]{40} --select threshold:0.33$/);
    expect(card).not.toMatch(/npx safe-lora|offline/);

    const elsewhere = mkdtempSync(join(work, "reviewer-"));
    await run("bash", ["-c", command!], { cwd: elsewhere, env: env() });
    const [a, b] = await Promise.all([readAllTensors(join(first, "adapter_model.safetensors")), readAllTensors(join(elsewhere, "gqa-lora-safe-lora", "adapter_model.safetensors"))]);
    expect([...b.tensors.keys()]).toEqual([...a.tensors.keys()]);
    for (const [name, tensor] of a.tensors) expect(Buffer.from(b.tensors.get(name)!.bytes).equals(Buffer.from(tensor.bytes)), name).toBe(true);
    const report = (dir: string) => JSON.parse(readFileSync(join(dir, "safe-lora-report.json"), "utf8")) as { modules: Array<{ projected: boolean }> };
    expect(report(join(elsewhere, "gqa-lora-safe-lora")).modules.map((m) => m.projected)).toEqual(report(first).modules.map((m) => m.projected));
  }, 120_000);
});
