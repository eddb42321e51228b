import { describe, expect, it } from "vitest";
import { withReadmeSection } from "../../src/report/readme-section.js";
import { eightModules } from "./report-fixture.js";

describe("withReadmeSection", () => {
  it("says so when more than half of the modules are projected", () => {
    expect(withReadmeSection(null, ".", eightModules(true))).toContain("8 of 8 modules projected (more than half: most of the fine-tune is removed) towards");
    expect(withReadmeSection(null, ".", eightModules())).toContain("4 of 8 modules projected towards");
  });
});
