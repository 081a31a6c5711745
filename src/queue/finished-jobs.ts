import type { Queue } from "bullmq";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../store/redis-client.js";
import { periodic } from "./periodic.js";

/**
 * Finished jobs removed by age, however quiet the queue. BullMQ removes a finished job past its
 * `removeOnComplete`/`removeOnFail` age only when another job of the queue finishes: in a quiet
 * shop the night's last purchase (a whole event, with the customer's contact data) stayed until
 * the next one, and a refused event past its 30 days until the next refusal. So every worker also
 * removes them itself, a few seconds after it started and every five minutes, in bounded batches
 * (BullMQ's `clean`, safe to run from several workers at once), and trims each queue's event
 * stream, which repeats failure reasons, to the age of the failed jobs.
 */

/** How long a queue's finished jobs are kept. */
export interface FinishedJobsRetention {
  readonly queue: Queue;
  readonly completedMs: number;
  readonly failedMs: number;
}

const FIRST_SWEEP_MS = 10_000;
const EVERY_MS = 5 * 60_000;
/** Jobs removed per `clean` call (one script), and calls per set and sweep at most. */
const BATCH = 1_000;
const MAX_BATCHES = 20;

export interface FinishedJobsSweeper {
  /** One sweep now: how many jobs it removed. */
  sweep(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
}

export function createFinishedJobsSweeper(deps: {
  readonly queues: readonly FinishedJobsRetention[];
  /** The connection the event streams are trimmed on. */
  readonly redis: RedisClient;
  readonly now: () => number;
  readonly logger: Logger;
  readonly firstSweepMs?: number;
}): FinishedJobsSweeper {
  const task = periodic({
    firstMs: deps.firstSweepMs ?? FIRST_SWEEP_MS,
    everyMs: EVERY_MS,
    run: async () => {
      const removed = await sweep();
      if (removed > 0) deps.logger.debug({ removed }, "finished jobs past their age removed");
    },
    failed: (error) =>
      deps.logger.warn({ err: error }, "could not remove finished jobs past their age"),
  });

  async function sweep(): Promise<number> {
    let removed = 0;
    for (const { queue, completedMs, failedMs } of deps.queues) {
      for (const [state, ageMs] of [
        ["completed", completedMs],
        ["failed", failedMs],
      ] as const) {
        for (let batch = 0; batch < MAX_BATCHES && !task.stopped(); batch++) {
          const gone = await queue.clean(ageMs, BATCH, state);
          removed += gone.length;
          if (gone.length < BATCH) break;
        }
      }
      const events = queue.keys.events;
      if (events)
        await deps.redis.xtrim(events, "MINID", `${Math.max(0, deps.now() - failedMs)}-0`);
    }
    return removed;
  }

  return { sweep, start: task.start, stop: task.stop };
}
