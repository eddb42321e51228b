import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

describe("safe-lora serve --help", () => {
  // Issue 8 item 15: an operator learns what the bot needs from the command itself, not only from the README.
  it("names the variables the bot requires", async () => {
    const { code, stdout } = await runCli(["serve", "--help"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/Required:\n\s+HF_TOKEN\s[\s\S]*\n\s+HF_WEBHOOK_SECRET\s/);
    expect(stdout).toMatch(/DATA_DIR[\s\S]*persistent storage/);
  });
});

describe("safe-lora serve and worker flags", () => {
  it("says how to run web and workers apart, and on which queue", async () => {
    const { stdout } = await runCli(["serve", "--help"]);
    expect(stdout).toMatch(/--web-only: no worker in this process/);
    expect(stdout).toMatch(/QUEUE_URL\s+redis:\/\/… : BullMQ on that Redis/);
  });

  it("refuses --web-only for a worker, which is nothing but a worker", async () => {
    const { code, stderr } = await runCli(["worker", "--web-only"]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/Unknown option '--web-only'.*; see --help/);
  });
});

describe("safe-lora serve --help and the GitHub App", () => {
  it("names the App's variables and its webhook path", async () => {
    const { stdout } = await runCli(["serve", "--help"]);
    expect(stdout).toMatch(/GitHub App \(all three, or none: then the Hub only\):\n\s+APP_ID, PRIVATE_KEY or PRIVATE_KEY_PATH, WEBHOOK_SECRET/);
    expect(stdout).toContain("POST /api/github/webhooks");
  });
});
