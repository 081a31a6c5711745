/** Most shards a deployment may have (FOLLOW_UP_SHARDS): enough to spread over any cluster's masters. */
export const MAX_SHARDS = 1024;

/**
 * The shards a worker serves, from FOLLOW_UP_SHARDS_SERVED: comma-separated shard numbers and
 * ranges (`0-7`, `0,2,4-6`); empty or absent means every shard. A problem is returned as a
 * sentence naming what was expected.
 */
export function parseServedShards(
  spec: string | undefined,
  count: number,
  /** Why shards end at `count`, for the problem; the deployment's FOLLOW_UP_SHARDS by default. */
  limit = `FOLLOW_UP_SHARDS is ${count}`,
): { shards: number[] } | { problem: string } {
  if (spec === undefined || spec.trim() === "")
    return { shards: Array.from({ length: count }, (_, n) => n) };
  const served = new Set<number>();
  for (const part of spec.split(",")) {
    const match = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!match)
      return {
        problem: `expected shard numbers and ranges such as 0-7 or 0,2,4-6, got ${JSON.stringify(part.trim())}`,
      };
    const from = Number(match[1]);
    const to = match[2] === undefined ? from : Number(match[2]);
    if (to < from) return { problem: `the range ${part.trim()} runs backwards` };
    if (to >= count)
      return {
        problem: `shard ${to} does not exist: ${limit}, so shards are 0 to ${count - 1}`,
      };
    for (let shard = from; shard <= to; shard++) served.add(shard);
  }
  return { shards: [...served].sort((a, b) => a - b) };
}
