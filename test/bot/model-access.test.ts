import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelAccessCheck } from "../../src/bot/model-access.js";
import { LocalHub } from "../../src/local-hub/server.js";
import { seedRepo } from "../../src/local-hub/seed.js";

let hub: LocalHub;
beforeAll(async () => {
  hub = await new LocalHub().start();
  await seedRepo(hub, "meta/llama-chat", [{ path: "README.md", data: "public" }]);
  await seedRepo(hub, "acme/private-base", [{ path: "README.md", data: "acme's own" }], { private: true });
  await seedRepo(hub, "rival/private-chat", [{ path: "README.md", data: "not acme's" }], { private: true });
});
afterAll(() => hub.close());

const check = (trustedModels: string[] = []) => modelAccessCheck({ adapterRepo: "acme/lora", trustedModels, hub: { hubUrl: hub.url } });
const refusal = (promise: Promise<void>) => promise.then(() => null, (error: { code?: string; message: string }) => error);
const asked = (id: string) => hub.requests.filter((r) => r.path.includes(id)).length;

describe("which base and aligned models the bot reads for an adapter", () => {
  it("a public model", async () => {
    await expect(check()("meta/llama-chat")).resolves.toBeUndefined();
  });

  it("a model of the adapter's own owner, without asking the Hub", async () => {
    await expect(check()("ACME/private-base")).resolves.toBeUndefined();
    expect(asked("private-base")).toBe(0);
  });

  it("a model the operator trusts, by glob and in any case", async () => {
    await expect(check(["Rival/*"])("rival/private-chat")).resolves.toBeUndefined();
  });

  it("refuses another owner's private model and a missing one in the same words, naming the ways out", async () => {
    const secret = await refusal(check()("rival/private-chat"));
    const missing = await refusal(check()("rival/no-such-model"));
    expect(secret).toMatchObject({ code: "model-not-allowed" });
    expect(secret!.message).toBe(
      "rival/private-chat is not a public model (or does not exist), and it is not acme's: this bot reads only public models, models of the adapter's owner, " +
        "and models its operator trusts. Name a public base/aligned pair (pair: in safe-lora.yaml), keep the models in acme, " +
        "or ask the bot's operator to add rival/private-chat to trustedModels in BOT_CONFIG",
    );
    expect(missing!.message.replaceAll("rival/no-such-model", "X")).toBe(secret!.message.replaceAll("rival/private-chat", "X"));
  });

  it("asks the Hub once per model for one job", async () => {
    const mayRead = check();
    const before = asked("meta/llama-chat");
    await mayRead("meta/llama-chat");
    await mayRead("meta/llama-chat");
    expect(asked("meta/llama-chat") - before).toBe(1);
  });
});
