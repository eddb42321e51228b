import type { TryVariant, TryVariantParams } from "../forge/forge.js";

/** The ref the Hub gives pull request `num`'s branch. */
export function hubPullRequestRef(num: number): string {
  return `refs/pr/${num}`;
}

/**
 * Loading a variant from a Hub pull request with transformers and PEFT: `revision` names the pull request's
 * branch until it is merged. Strings are Python literals from JSON, so a quote in a folder name cannot end one.
 */
export function hubTryVariant(params: TryVariantParams): TryVariant {
  const str = (value: string) => JSON.stringify(value);
  const revision = params.num === null ? "refs/pr/<number of this pull request>" : hubPullRequestRef(params.num);
  return {
    language: "python",
    beforeMerging: [
      "from transformers import AutoModelForCausalLM",
      "from peft import PeftModel",
      "",
      `model = AutoModelForCausalLM.from_pretrained(${str(params.aligned)})`,
      // One argument a line: the Hub shows code blocks without wrapping, and this line ran off the page.
      "model = PeftModel.from_pretrained(",
      `    model, ${str(params.repo)},`,
      `    subfolder=${str(params.subfolder)}, revision=${str(revision)},`,
      ")",
    ].join("\n"),
    afterMerging: `PeftModel.from_pretrained(model, ${str(params.repo)}, subfolder=${str(params.subfolder)})`,
    afterMergingNote: "the same without `revision`",
  };
}
