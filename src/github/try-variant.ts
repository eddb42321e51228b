import type { TryVariant, TryVariantParams } from "../forge/forge.js";

/** The ref GitHub keeps for pull request `num`'s head, in the base repo (so fetchable without the branch's name). */
export function githubPullRequestRef(num: number): string {
  return `refs/pull/${num}/head`;
}

/** A word as a POSIX shell reads it literally: single-quoted, with any `'` closed, escaped and reopened. */
function shellWord(value: string): string {
  return /^[A-Za-z0-9._/:@-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Loading a variant from a GitHub pull request: PEFT reads the Hub, not GitHub, so the variant is loaded from a
 * clone, with the pull request's head fetched by its `refs/pull/N/head` ref until it is merged. Python strings
 * are JSON literals and shell words are quoted, so a quote in a folder name cannot end one.
 */
export function githubTryVariant(params: TryVariantParams & { readonly webUrl: string }): TryVariant {
  const str = (value: string) => JSON.stringify(value);
  const name = params.repo.slice(params.repo.indexOf("/") + 1);
  const ref = params.num === null ? "refs/pull/<number of this pull request>/head" : githubPullRequestRef(params.num);
  const load = `PeftModel.from_pretrained(model, ${str(params.subfolder)})`;
  return {
    language: "bash",
    beforeMerging: [
      `git clone ${shellWord(`${params.webUrl.replace(/\/+$/, "")}/${params.repo}.git`)} && cd ${shellWord(name)}`,
      // A placeholder must not be run as it stands: it is quoted so the shell does not read `<` as a redirection.
      `git fetch origin ${shellWord(ref)} && git checkout FETCH_HEAD`,
      "git lfs pull  # when the repo keeps tensors in Git LFS",
      "python - <<'EOF'",
      "from transformers import AutoModelForCausalLM",
      "from peft import PeftModel",
      "",
      `model = AutoModelForCausalLM.from_pretrained(${str(params.aligned)})`,
      `model = ${load}`,
      "EOF",
    ].join("\n"),
    afterMerging: load,
    afterMergingNote: "in a clone of the default branch, the same without the `git fetch`",
  };
}
