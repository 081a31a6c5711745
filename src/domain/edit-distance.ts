/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * The candidate nearest to `name` when one is near enough to be a misspelling of it (at most 2
 * edits, or a fifth of the name's length for a longer one: `accessory-discount` for
 * `accessories-discount` is 3), else undefined. Compared without regard to case; ties go to the
 * first candidate.
 */
export function nearestName(name: string, candidates: Iterable<string>): string | undefined {
  const within = Math.max(2, Math.floor(name.length / 5));
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    if (candidate === name) continue;
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance <= within && (!best || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}
