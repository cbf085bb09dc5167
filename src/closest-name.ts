/** Edit distance (insert, delete, replace, swap of neighbours) between two names. */
function distance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = rows[i] as number[];
      const above = rows[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min((above[j] as number) + 1, (row[j - 1] as number) + 1, (above[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, ((rows[i - 2] as number[])[j - 2] as number) + 1);
      row[j] = best;
    }
  }
  return (rows[a.length] as number[])[b.length] as number;
}

/** The known name closest to a typo, when it is close enough to be a plausible intent. */
export function closestName(typo: string, known: readonly string[]): string | undefined {
  let best: { name: string; score: number } | undefined;
  for (const name of known) {
    const score = distance(typo.toUpperCase(), name.toUpperCase());
    if (!best || score < best.score) best = { name, score };
  }
  return best && best.score <= Math.max(2, Math.floor(typo.length / 4)) ? best.name : undefined;
}
