import { describe, expect, it } from "vitest";
import { parseAdapterId } from "../../src/local-inference/adapter-id.js";

const SHA = "0123456789abcdef0123456789abcdef01234567";

describe("parseAdapterId", () => {
  it("reads the repo, the revision and the folder", () => {
    expect(parseAdapterId("acme/lora")).toEqual({ id: "acme/lora", repo: "acme/lora", revision: "main", folder: "." });
    expect(parseAdapterId(`acme/lora@${SHA}`)).toMatchObject({ repo: "acme/lora", revision: SHA, folder: "." });
    expect(parseAdapterId("acme/lora@dev/adapters/v2")).toMatchObject({ revision: "dev", folder: "adapters/v2" });
  });

  it("takes a pull request's ref URL-encoded, since a slash starts the folder", () => {
    expect(parseAdapterId("acme/lora@refs%2Fpr%2F3/sub")).toMatchObject({ revision: "refs/pr/3", folder: "sub" });
    expect(parseAdapterId("acme/lora@refs/pr/3")).toMatchObject({ revision: "refs", folder: "pr/3" });
  });

  it.each([
    ["no repo id", "lora@main", "not a Hub repo id"],
    ["a dot-dot repo", "../x@main", "not a Hub repo id"],
    ["an empty revision", "acme/lora@", "neither a commit sha"],
    ["a revision escaping by encoding", "acme/lora@..%2F..%2Fother", "neither a commit sha"],
    ["an encoded branch with a slash", "acme/lora@feature%2Fx", "neither a commit sha"],
    ["broken encoding", "acme/lora@ma%in", "not valid URL encoding"],
    ["a folder going up", "acme/lora@main/a/../../b", 'has a ".." segment'],
    ["an empty folder segment", "acme/lora@main/a//x", "empty segment"],
    ["a folder from the root", "acme/lora@main//x", "starts with /"],
    ["a trailing slash", "acme/lora@main/", "empty"],
    ["a backslash", "acme/lora@main/a\\b", "backslash"],
    ["an overlong id", `acme/lora@main/${"a".repeat(600)}`, "longer than"],
  ])("refuses %s, saying what is wrong and how ids are written", (_what, id, problem) => {
    expect(() => parseAdapterId(id)).toThrow(expect.objectContaining({ code: "usage", message: expect.stringMatching(new RegExp(`${problem.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}.*org/name@<revision>`)) }));
  });
});
