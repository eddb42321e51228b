import { describe, expect, it } from "vitest";
import { SafeLoraError } from "../../src/errors.js";
import type { HubModelInfo } from "../../src/hub/hub-repo-files.js";
import { resolveBase } from "../../src/hub/resolve-pair.js";

const info = (extra: Partial<HubModelInfo> = {}): HubModelInfo => ({ sha: "a".repeat(40), ...extra });

/** The model tree with an aligned model whose card names two bases; `refuse` are the ids the lookup refuses. */
function query(refuse: readonly string[]) {
  return {
    adapterBase: null,
    adapterCard: null,
    allowModelTree: true,
    lookup: async (id: string): Promise<HubModelInfo> => {
      if (refuse.includes(id)) throw new SafeLoraError(`${id} may not be read`, "model-not-allowed");
      if (id === "org/chat") return info({ cardData: { base_model: ["other/private-base", "org/base"] } });
      return info();
    },
  };
}

describe("resolveBase from the model tree", () => {
  // Found in review: the first base a card named that the trust rule refused ended the search.
  it("tries the next base a card names when one may not be read", async () => {
    await expect(resolveBase(query(["other/private-base"]), "org/chat")).resolves.toEqual({ id: "org/base", resolvedBy: "model-tree" });
  });

  it("says why when every base it names is refused", async () => {
    await expect(resolveBase(query(["other/private-base", "org/base"]), "org/chat")).rejects.toMatchObject({ code: "model-not-allowed", message: "other/private-base may not be read" });
  });
});
