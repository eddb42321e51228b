/**
 * Edit distance with adjacent transpositions counted as one edit (optimal string alignment), so that the
 * commonest typos — a dropped, doubled or swapped letter — are each one step away.
 */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate `word` is most likely a typo of, or null when none is close: at most two edits, and fewer than
 * half the word's letters, so that short words are not "corrected" into unrelated ones. Case is ignored.
 */
export function didYouMean(word: string, candidates: readonly string[]): string | null {
  const lower = word.toLowerCase();
  let best: { candidate: string; distance: number } | null = null;
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance === 0) return candidate;
    if (distance <= 2 && distance * 2 < lower.length && (!best || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate ?? null;
}
