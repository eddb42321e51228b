import { describe, expect, it } from "vitest";
import { parseComment } from "../../src/commands/parse-comment.js";

const bot = "safe-lora-bot";

describe("parseComment", () => {
  it.each([
    ["@safe-lora-bot repatch", { name: "repatch", selection: null, folder: null }],
    ["please @safe-lora-bot repatch tau=0.4 thanks", null],
    ["@safe-lora-bot repatch threshold:0.4", { name: "repatch", selection: { mode: "threshold", value: 0.4 }, folder: null }],
    ["@Safe-LoRA-Bot REPATCH top-k=3", { name: "repatch", selection: { mode: "top-k", value: 3 }, folder: null }],
    ["@safe-lora-bot repatch fraction=0.25 folder=adapters/a/", { name: "repatch", selection: { mode: "fraction", value: 0.25 }, folder: "adapters/a" }],
    ["@safe-lora-bot status folder=./x", { name: "status", folder: "x" }],
    ["@safe-lora-bot stop", { name: "stop", folder: null }],
    ["@safe-lora-bot start", { name: "start", folder: null }],
    ["@safe-lora-bot help", { name: "help" }],
    // The aliases are the CLI's parser's: every spelling --select takes works here too.
    ["@safe-lora-bot repatch threshold=0.3", { name: "repatch", selection: { mode: "threshold", value: 0.3 }, folder: null }],
    ["@safe-lora-bot repatch tau:0.3", { name: "repatch", selection: { mode: "threshold", value: 0.3 }, folder: null }],
    ["@safe-lora-bot repatch fraction:0.1", { name: "repatch", selection: { mode: "fraction", value: 0.1 }, folder: null }],
    // The operator by --operator's parser, alone or with a selection, in either order.
    ["@safe-lora-bot repatch operator=subspace:8", { name: "repatch", selection: null, operator: { kind: "subspace", rank: 8 }, folder: null }],
    ["@safe-lora-bot repatch top-k:4 operator=subspace:0.9", { name: "repatch", selection: { mode: "top-k", value: 4 }, operator: { kind: "subspace", energy: 0.9 }, folder: null }],
    ["@safe-lora-bot repatch operator:paper tau=0.3", { name: "repatch", selection: { mode: "threshold", value: 0.3 }, operator: { kind: "paper" }, folder: null }],
  ])("reads %j", (text, command) => {
    const parsed = parseComment(text, bot);
    if (command === null) {
      // Trailing words after a selection are not a selection: it says so.
      expect(parsed).toMatchObject({ kind: "invalid", error: expect.stringMatching(/^"thanks" is not a selection: write threshold:<τ>, top-k:<k> or fraction:<p>/) });
    } else {
      expect(parsed).toEqual({ kind: "command", command, text: expect.any(String) });
    }
  });

  it.each([
    ["@safe-lora-bot", /no command after the mention/],
    ["@safe-lora-bot dance", /^unknown command `dance`$/],
    ["@safe-lora-bot repach tau=0.2", /^unknown command `repach` — did you mean `repatch`\?$/],
    ["@safe-lora-bot stauts", /^unknown command `stauts` — did you mean `status`\?$/],
    ["@safe-lora-bot repatch treshold:0.3", /did you mean threshold:0\.3\?/],
    ["@safe-lora-bot repatch tau=0.3 thanks", /"thanks" is not a selection/],
    ["@safe-lora-bot repatch tau=2", /the threshold value must be a number from -1 to 1/],
    ["@safe-lora-bot repatch top-k=0", /top-k value must be a whole number of modules, at least 1/],
    ["@safe-lora-bot repatch tau=0.1 top-k=2", /more than one selection/],
    ["@safe-lora-bot repatch operator=subspace:0", /"subspace:0": subspace takes a whole number of directions from 1/],
    ["@safe-lora-bot repatch operator=projector", /"projector" is not an operator: write paper, subspace:<k>/],
    ["@safe-lora-bot repatch operator=subspace:4 operator=paper", /more than one operator/],
    ["@safe-lora-bot status operator=subspace:4", /`status` takes no argument `operator=subspace:4`/],
    ["@safe-lora-bot stop now", /`stop` takes no argument `now`/],
    ["@safe-lora-bot repatch folder=../../otherorg/private", /`folder=` must name a folder inside the repo.*"\.\." segment/],
    ["@safe-lora-bot status folder=adapters/../../x", /`folder=` must name a folder inside the repo/],
    ["@safe-lora-bot stop folder=a//b", /`folder=` must name a folder inside the repo.*empty segment/],
    ["@safe-lora-bot start folder=a\\b", /`folder=` must name a folder inside the repo.*backslash/],
    ["@safe-lora-bot repatch folder=a/./b", /`folder=` must name a folder inside the repo/],
  ])("explains %j", (text, error) => {
    const parsed = parseComment(text, bot);
    expect(parsed.kind).toBe("invalid");
    expect(parsed.kind === "invalid" && parsed.error).toMatch(error);
  });

  it.each(["Thanks for the PR!", "> @safe-lora-bot repatch tau=0.4\nAs the bot was told above.", "```\n@safe-lora-bot repatch\n```", "mail me at x@safe-lora-bot.example", "@safe-lora-botany repatch"])(
    "ignores %j (no mention, quoted or code)",
    (text) => {
      expect(parseComment(text, bot)).toEqual({ kind: "none" });
    },
  );
});

describe("a slash command, where the forge has one (GitHub: /safe-lora)", () => {
  const app = { name: "safe-lora[bot]", slashCommand: "safe-lora" };

  it("reads /safe-lora at the start of a line like a mention, and still takes the mention", () => {
    expect(parseComment("/safe-lora repatch top-k=3", app)).toEqual({ kind: "command", command: { name: "repatch", selection: { mode: "top-k", value: 3 }, folder: null }, text: "/safe-lora repatch top-k=3" });
    expect(parseComment("Thanks!\n  /safe-lora status", app)).toMatchObject({ kind: "command", command: { name: "status" } });
    expect(parseComment("@safe-lora[bot] stop", app)).toMatchObject({ kind: "command", command: { name: "stop" } });
    expect(parseComment("/SAFE-LORA help", app)).toMatchObject({ kind: "command", command: { name: "help" } });
  });

  it("takes the first of a mention and a slash command in one comment", () => {
    expect(parseComment("@safe-lora[bot] status\n/safe-lora stop", app)).toMatchObject({ command: { name: "status" } });
    expect(parseComment("/safe-lora stop\n@safe-lora[bot] status", app)).toMatchObject({ command: { name: "stop" } });
  });

  it("does not take it inside a line, in a quote, in a longer name, or where the forge has none", () => {
    expect(parseComment("see /safe-lora repatch in the docs", app)).toEqual({ kind: "none" });
    expect(parseComment("> /safe-lora repatch", app)).toEqual({ kind: "none" });
    expect(parseComment("/safe-lora-extra repatch", app)).toEqual({ kind: "none" });
    expect(parseComment("/safe-lora repatch", "safe-lora-bot")).toEqual({ kind: "none" });
  });

  it("answers a bad command after it as invalid, quoting the slash form", () => {
    expect(parseComment("/safe-lora repach", app)).toMatchObject({ kind: "invalid", text: "/safe-lora repach", error: expect.stringMatching(/did you mean `repatch`/) });
    expect(parseComment("/safe-lora", app)).toMatchObject({ kind: "invalid", error: "no command after the mention" });
  });
});
