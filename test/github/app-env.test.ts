import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadEnv } from "../../src/config/env.js";
import { githubAppSettings } from "../../src/github/app-env.js";

const KEY = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString();
const SECRET = "a-long-webhook-secret";
const work = mkdtempSync(join(tmpdir(), "safe-lora-app-env-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The settings from these variables, validated by loadEnv first as the bot does. */
const settingsOf = (vars: Record<string, string>) => githubAppSettings(loadEnv(vars));

describe("the GitHub App's environment", () => {
  it("none of its variables: no App (the bot serves the Hub only)", async () => {
    expect(await settingsOf({})).toBeNull();
    expect(await settingsOf({ GITHUB_API_URL: "https://ghe.example.com/api/v3", GITHUB_APP_SLUG: "safe-lora" })).toBeNull();
  });

  it("APP_ID, PRIVATE_KEY and WEBHOOK_SECRET: the App, with the API URL and slug when given", async () => {
    expect(await settingsOf({ APP_ID: "123456", PRIVATE_KEY: KEY, WEBHOOK_SECRET: SECRET })).toEqual({ appId: 123456, privateKey: KEY, webhookSecret: SECRET });
    expect(await settingsOf({ APP_ID: "1", PRIVATE_KEY: KEY, WEBHOOK_SECRET: SECRET, GITHUB_API_URL: "https://ghe.example.com/api/v3/", GITHUB_APP_SLUG: "safe-lora" })).toEqual({
      appId: 1,
      privateKey: KEY,
      webhookSecret: SECRET,
      baseUrl: "https://ghe.example.com/api/v3",
      slug: "safe-lora",
    });
  });

  it("a key pasted on one line with literal \\n reads as the PEM", async () => {
    const settings = await settingsOf({ APP_ID: "1", PRIVATE_KEY: KEY.replace(/\n/g, "\\n"), WEBHOOK_SECRET: SECRET });
    expect(settings?.privateKey).toBe(KEY);
  });

  it("PRIVATE_KEY_PATH: the key read from its file", async () => {
    const path = join(work, "app.pem");
    writeFileSync(path, KEY);
    expect((await settingsOf({ APP_ID: "1", PRIVATE_KEY_PATH: path, WEBHOOK_SECRET: SECRET }))?.privateKey).toBe(KEY);
  });

  it("some but not all: a usage error naming each missing variable", async () => {
    await expect(settingsOf({ APP_ID: "1" })).rejects.toMatchObject({
      code: "usage",
      message: "the GitHub App is half configured: PRIVATE_KEY or PRIVATE_KEY_PATH, WEBHOOK_SECRET unset; set all of APP_ID, PRIVATE_KEY or PRIVATE_KEY_PATH, WEBHOOK_SECRET to serve GitHub, or none of them to serve the Hub only",
    });
    await expect(settingsOf({ PRIVATE_KEY: KEY, WEBHOOK_SECRET: SECRET })).rejects.toThrow("the GitHub App is half configured: APP_ID unset;");
    await expect(settingsOf({ WEBHOOK_SECRET: SECRET })).rejects.toThrow("the GitHub App is half configured: APP_ID, PRIVATE_KEY or PRIVATE_KEY_PATH unset;");
  });

  it("refuses both key variables, a key that is no PEM, and a key file that is missing or too large, never quoting the key", async () => {
    const path = join(work, "both.pem");
    writeFileSync(path, KEY);
    await expect(settingsOf({ APP_ID: "1", PRIVATE_KEY: KEY, PRIVATE_KEY_PATH: path, WEBHOOK_SECRET: SECRET })).rejects.toThrow("both PRIVATE_KEY and PRIVATE_KEY_PATH are set; set one of them");

    const notAKey = "hunter2-not-a-key";
    const refused = await settingsOf({ APP_ID: "1", PRIVATE_KEY: notAKey, WEBHOOK_SECRET: SECRET }).catch((error: Error) => error);
    expect(refused).toMatchObject({ code: "usage", message: expect.stringMatching(/^PRIVATE_KEY is not a PEM private key; use the \.pem file/) });
    expect((refused as Error).message).not.toContain(notAKey);

    await expect(settingsOf({ APP_ID: "1", PRIVATE_KEY_PATH: join(work, "nope.pem"), WEBHOOK_SECRET: SECRET })).rejects.toThrow(`PRIVATE_KEY_PATH ${join(work, "nope.pem")} cannot be read;`);
    const big = join(work, "big.pem");
    writeFileSync(big, `${KEY}\n${"x".repeat(20_000)}`);
    const tooLarge = await settingsOf({ APP_ID: "1", PRIVATE_KEY_PATH: big, WEBHOOK_SECRET: SECRET }).catch((error: Error) => error);
    expect((tooLarge as Error).message).toBe(`PRIVATE_KEY_PATH ${big} is larger than 16384 bytes, so it is no PEM key; point it at the .pem file GitHub gave when the App's key was generated`);
  });

  it("loadEnv checks the variables' forms, naming the variable and not its value", () => {
    expect(() => loadEnv({ APP_ID: "my-app" })).toThrow(/^environment variable APP_ID: /);
    expect(() => loadEnv({ GITHUB_API_URL: "ftp://ghe.example.com" })).toThrow(/^environment variable GITHUB_API_URL: /);
    expect(() => loadEnv({ GITHUB_APP_SLUG: "Safe LoRA" })).toThrow("environment variable GITHUB_APP_SLUG: must be the App's slug: lowercase letters, digits and '-'");
    expect(() => loadEnv({ WEBHOOK_SECRET: "short" })).toThrow("environment variable WEBHOOK_SECRET: is too short for a webhook secret; use a long random string");
    const long = `-----BEGIN RSA PRIVATE KEY-----${"A".repeat(20_000)}`;
    let message = "";
    try {
      loadEnv({ PRIVATE_KEY: long });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toBe("environment variable PRIVATE_KEY: is longer than any PEM key; set PRIVATE_KEY_PATH to the .pem file instead");
  });
});
