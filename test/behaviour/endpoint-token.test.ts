import { describe, expect, it } from "vitest";
import { endpointToken } from "../../src/behaviour/endpoint-token.js";
import { InferenceEndpointConfig } from "../../src/behaviour/schema.js";
import { SafeLoraError } from "../../src/errors.js";

const config = (tokenEnv?: string) => InferenceEndpointConfig.parse({ url: "https://tgi.example", protocol: "tgi", ...(tokenEnv ? { tokenEnv } : {}) });

describe("endpointToken", () => {
  it("is null without tokenEnv, even with HF_TOKEN set", () => {
    expect(endpointToken("main", config(), { HF_TOKEN: "hf_secret" })).toBeNull();
  });

  it("is the value of the variable tokenEnv names", () => {
    expect(endpointToken("main", config("SAFE_LORA_TGI_TOKEN"), { SAFE_LORA_TGI_TOKEN: "t0ken", HF_TOKEN: "hf_secret" })).toBe("t0ken");
  });

  it("refuses a tokenEnv whose variable is unset, naming the endpoint and the variable", () => {
    expect(() => endpointToken("main", config("SAFE_LORA_TGI_TOKEN"), {})).toThrow(SafeLoraError);
    expect(() => endpointToken("main", config("SAFE_LORA_TGI_TOKEN"), {})).toThrow(/behaviour\.endpoints\.main\.tokenEnv names SAFE_LORA_TGI_TOKEN, which is not set/);
  });
});
