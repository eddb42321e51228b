import { z } from "zod";
import { SafeLoraError } from "../errors.js";
import { SUBSPACE_SEED } from "./subspace-operator.js";

/**
 * The most directions a subspace may keep. The randomised SVD costs O(d·k²) for the orthonormalisation and O(k³) per
 * sweep of the small eigenproblem per module: k in the thousands (anyone allowed to comment can ask) would hold a
 * worker for hours. 256 directions already keep most of V's energy in the models measured (README).
 */
export const MAX_SUBSPACE_RANK = 256;

/**
 * Which operator projects a module's `lora_B`. One syntax everywhere (CLI `--operator`, safe-lora.yaml `operator:`,
 * PR comments `operator=`): `paper` — the paper's C = V Vᵀ / ‖V‖_F, which rescales along V's singular directions;
 * `subspace:<k>` — the orthogonal projector P = U_k U_kᵀ onto V's top k left singular vectors; `subspace:<e>` with
 * 0 < e < 1 — the same with the smallest k whose singular values capture the share e of ‖V‖_F².
 */
export const Operator = z.union([
  z.object({ kind: z.literal("paper") }),
  z.object({ kind: z.literal("subspace"), rank: z.number().int().min(1).max(MAX_SUBSPACE_RANK) }),
  z.object({ kind: z.literal("subspace"), energy: z.number().gt(0).lt(1) }),
]);
export type Operator = z.infer<typeof Operator>;
export type SubspaceOperator = Extract<Operator, { kind: "subspace" }>;

/** The default: the paper's operator, as the official code computes it (the golden tests hold it to that). */
export const DEFAULT_OPERATOR: Operator = { kind: "paper" };

const SYNTAX = "paper, subspace:<k> (a whole number of singular directions, e.g. subspace:8) or subspace:<e> (a share of ‖V‖_F² between 0 and 1, e.g. subspace:0.9)";

export function formatOperator(operator: Operator): string {
  if (operator.kind === "paper") return "paper";
  return "rank" in operator ? `subspace:${operator.rank}` : `subspace:${operator.energy}`;
}

/**
 * Parses an operator: `paper`, `subspace:8` (k by count) or `subspace:0.9` (k by captured energy); `=` works
 * like `:` as in selections. The one parser for the CLI, safe-lora.yaml and comments.
 */
export function parseOperator(text: string): Operator {
  const trimmed = text.trim();
  if (trimmed.toLowerCase() === "paper") return DEFAULT_OPERATOR;
  const match = /^subspace\s*[:=]\s*(\S+)$/i.exec(trimmed);
  if (!match) throw new SafeLoraError(`"${trimmed}" is not an operator: write ${SYNTAX}`, "usage");
  const value = Number(match[1]);
  const isCount = /^\d+$/.test(match[1]!);
  const parsed = Operator.safeParse(isCount ? { kind: "subspace", rank: value } : { kind: "subspace", energy: value });
  if (!parsed.success || !Number.isFinite(value)) {
    throw new SafeLoraError(
      `"${trimmed}": subspace takes a whole number of directions from 1 to ${MAX_SUBSPACE_RANK} or an energy share strictly between 0 and 1 (e.g. subspace:8, subspace:0.9)`,
      "usage",
    );
  }
  return parsed.data;
}

/** The report's readable formula of each operator. */
export function operatorFormula(operator: Operator): string {
  const v = "V = W_aligned − W_base (fp32)";
  if (operator.kind === "paper") return `C = V Vᵀ / ‖V‖_F with ${v}; lora_B ← C·lora_B`;
  const k = "rank" in operator ? `k = ${operator.rank}` : `k the smallest with Σ_{i≤k} σᵢ² ≥ ${operator.energy}·‖V‖_F²`;
  return `P = U_k U_kᵀ, U_k the top k left singular vectors of ${v} (randomised SVD, seed ${SUBSPACE_SEED}), ${k}; lora_B ← P·lora_B`;
}
