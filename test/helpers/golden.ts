import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

export const GOLDEN_DIR = fileURLToPath(new URL("../fixtures/golden/", import.meta.url));
export const GOLDEN_CASES = ["llama-gqa-qv", "llama-all-linear"] as const;

/** `expected.json`: what the official IBM/SafeLoRA code did on each case. */
const ExpectedRun = z.object({
  mode: z.discriminatedUnion("type", [
    z.object({ type: z.literal("threshold"), threshold: z.number() }),
    z.object({ type: z.literal("number"), k: z.number().int() }),
  ]),
  expected_dir: z.string(),
  modules: z.array(z.string()),
  cos: z.array(z.number()),
  projected: z.array(z.string()),
  derived_threshold: z.number().optional(),
});
export const Expected = z.looseObject({ case: z.string(), runs: z.array(ExpectedRun) });
export type ExpectedRun = z.infer<typeof ExpectedRun>;

export function loadExpected(caseName: string): z.infer<typeof Expected> {
  return Expected.parse(JSON.parse(readFileSync(join(GOLDEN_DIR, caseName, "expected.json"), "utf8")));
}

export function goldenPath(caseName: string, ...parts: string[]): string {
  return join(GOLDEN_DIR, caseName, ...parts);
}

/** The selection flag that asks our CLI for what the official run did. */
export function selectionFlag(run: ExpectedRun): string {
  return run.mode.type === "threshold" ? `threshold:${run.mode.threshold}` : `top-k:${run.mode.k}`;
}
