import { HubApiError } from "@huggingface/hub";
import { describe, expect, it } from "vitest";
import { organizationMembers } from "../../src/hub/discussions.js";
import { explainHubError, type HubAccess } from "../../src/hub/hub-access.js";

/** A Hub that answers every request with `status` and the Hub's JSON error body. */
function refusingHub(status: number): HubAccess {
  const answer = async () => new Response(JSON.stringify({ error: "Access to this resource is restricted" }), { status, headers: { "Content-Type": "application/json", "X-Request-Id": "req-1" } });
  return { hubUrl: "https://hub.test", accessToken: "hf_test", fetch: answer as typeof fetch };
}

describe("the discussions API's refusals", () => {
  it("are @huggingface/hub's HubApiError, with status, URL and request id", async () => {
    const error = await organizationMembers(refusingHub(403), "acme").catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(HubApiError);
    expect(error).toMatchObject({
      statusCode: 403,
      url: "https://hub.test/api/organizations/acme/members",
      requestId: "req-1",
      data: { error: "Access to this resource is restricted" },
    });
  });

  it("get the friendly message every other Hub call gets", async () => {
    const access = refusingHub(403);
    const error = await organizationMembers(access, "acme").catch((caught: unknown) => explainHubError(caught, "acme", access));
    expect(error).toMatchObject({
      code: "hub-access",
      message: "acme is gated or private and this token may not read it (GET /api/organizations/acme/members: 403 Access to this resource is restricted)",
    });
  });
});
