import { describe, expect, it } from "vitest";
import { jobKey } from "../../src/queue/job-key.js";

describe("jobKey", () => {
  it("joins the kind, the forge and the parts with |, each part percent-encoded: never a ':' (BullMQ ids)", () => {
    expect(jobKey("scan", "hub", "acme/x", "abc")).toBe("scan|hub|acme%2Fx|abc");
    expect(jobKey("patch", "hub", "acme/x", "v1:final", "a|b", "é")).toBe("patch|hub|acme%2Fx|v1%3Afinal|a%7Cb|%C3%A9");
  });

  it("keeps apart what differs only by forge or by where the parts split", () => {
    expect(jobKey("scan", "hub", "acme/x", "abc")).not.toBe(jobKey("scan", "github", "acme/x", "abc"));
    expect(jobKey("patch", "hub", "a|b", "c")).not.toBe(jobKey("patch", "hub", "a", "b|c"));
    expect(jobKey("patch", "hub", "a", "")).not.toBe(jobKey("patch", "hub", "a"));
  });
});
