import type { Logger } from "../logger.js";
import { periodic } from "./periodic.js";

/**
 * Watches that every shard's follow-ups queue has a worker: with FOLLOW_UP_SHARDS_SERVED, a
 * shard that no running worker lists (a typo, or the shard count raised by `followups reshard`
 * while the workers kept their old lists) would leave its customers' follow-ups waiting without a
 * word, to be skipped as past due once a worker comes. Every worker looks a few seconds after it
 * started, then every minute, and says so when the set of unserved shards changes (a warning
 * naming them; once all are served again, that too); the count is a gauge for alerting.
 */

/** The first look, once the workers starting beside this one are likely up. */
const FIRST_LOOK_MS = 5_000;
const EVERY_MS = 60_000;

export interface ShardCoverageWatch {
  /** The shards no worker serves now, as seen by one look. */
  look(): Promise<readonly number[]>;
  start(): void;
  stop(): Promise<void>;
}

export function createShardCoverageWatch(deps: {
  readonly shards: number;
  /** How many workers take jobs from a shard's follow-ups queue (BullMQ's getWorkersCount). */
  readonly workersOf: (shard: number) => Promise<number>;
  /** Told the number of unserved shards after every look. */
  readonly report?: (unserved: number) => void;
  readonly logger: Logger;
  readonly firstLookMs?: number;
}): ShardCoverageWatch {
  let known = "";

  async function look(): Promise<readonly number[]> {
    const all = Array.from({ length: deps.shards }, (_, shard) => shard);
    const counts = await Promise.all(all.map((shard) => deps.workersOf(shard)));
    return all.filter((shard) => counts[shard] === 0);
  }

  const task = periodic({
    firstMs: deps.firstLookMs ?? FIRST_LOOK_MS,
    everyMs: EVERY_MS,
    run: async () => {
      const unserved = await look();
      deps.report?.(unserved.length);
      const now = unserved.join(",");
      if (now === known) return;
      if (unserved.length > 0)
        deps.logger.warn(
          { unserved, shards: deps.shards },
          "no worker serves these shards: their customers' follow-ups wait (set FOLLOW_UP_SHARDS_SERVED so that every shard is served)",
        );
      else deps.logger.info({ shards: deps.shards }, "every shard is served again");
      known = now;
    },
    failed: (error) => deps.logger.warn({ err: error }, "could not count shard workers"),
  });

  return { look, start: task.start, stop: task.stop };
}
