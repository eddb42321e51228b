import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import { inSubfolder, type RepoFiles } from "../storage/repo-files.js";
import { parseModelJson } from "./llama-config.js";

export const VOCABULARY_FILE = "vocab.json";

/** vocab.json: the token of each id, in id order; a one-character entry is that character, longer ones are special tokens (`<pad>`). */
const VocabularyJson = z.array(z.string().min(1).max(64)).min(1).max(1 << 16);

/**
 * A character-level tokenizer (the miniature model family's): a prompt is encoded character by character, no
 * special tokens added. Special tokens have no text, so they decode to nothing.
 */
export class CharVocabulary {
  private constructor(
    private readonly tokens: readonly string[],
    private readonly idOf: ReadonlyMap<string, number>,
  ) {}

  static parse(text: string, where: string, vocabSize: number): CharVocabulary {
    const parsed = VocabularyJson.safeParse(parseModelJson(text, where));
    if (!parsed.success) {
      throw new SafeLoraError(`${where} is not a character vocabulary (a JSON array of the token of each id): ${parsed.error.issues[0]?.message}`, "invalid-model-config");
    }
    const tokens = parsed.data;
    if (tokens.length !== vocabSize) {
      throw new SafeLoraError(`${where} has ${tokens.length} tokens but config.json's vocab_size is ${vocabSize}; they must be the same model's`, "invalid-model-config");
    }
    const idOf = new Map<string, number>();
    tokens.forEach((token, id) => {
      if ([...token].length !== 1) return;
      if (idOf.has(token)) throw new SafeLoraError(`${where} lists ${JSON.stringify(token)} twice (ids ${idOf.get(token)} and ${id})`, "invalid-model-config");
      idOf.set(token, id);
    });
    return new CharVocabulary(tokens, idOf);
  }

  static async read(files: RepoFiles, folder: string, vocabSize: number): Promise<CharVocabulary> {
    const path = inSubfolder(folder, VOCABULARY_FILE);
    if (!(await files.exists(path))) {
      throw new SafeLoraError(
        `${files.description} has no ${path}: the local forward pass reads a character vocabulary (a JSON array, one token per id) beside config.json`,
        "missing-file",
      );
    }
    return CharVocabulary.parse(await files.readText(path), `${files.description}/${path}`, vocabSize);
  }

  get size(): number {
    return this.tokens.length;
  }

  /** One id per character; a character outside the vocabulary is a usage error naming it and where it is. */
  encode(text: string): number[] {
    return Array.from(text, (char, index) => {
      const id = this.idOf.get(char);
      if (id === undefined) {
        const known = [...this.idOf.keys()].map((known) => JSON.stringify(known)).join(" ");
        throw new SafeLoraError(`the prompt holds ${JSON.stringify(char)} (character ${index + 1}), which the model's vocabulary lacks; it knows ${known}`, "usage");
      }
      return id;
    });
  }

  /** The text of `ids`; special tokens (`<pad>`) contribute nothing. */
  decode(ids: readonly number[]): string {
    return ids.map((id) => (this.idOf.get(this.tokens[id] ?? "") === id ? this.tokens[id] : "")).join("");
  }
}
