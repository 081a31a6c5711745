import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { sleep } from "./processes.js";

const POLL_MS = 20;

/** Resolves once the queue has nothing waiting, active or delayed; throws after `timeoutMs`. */
export async function drained(queue: Queue, timeoutMs = 30 * 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await queue.getJobCounts("wait", "active", "prioritized", "delayed");
    if (Object.values(counts).every((n) => n === 0)) return;
    if (Date.now() > deadline) throw new Error(`${queue.name} did not drain in time`);
    await sleep(POLL_MS);
  }
}

/**
 * When the queue's last job finished (epoch ms): the top score of its completed set, which BullMQ
 * scores by finishedOn. Exact, unlike the moment a poll noticed the queue was empty.
 */
export async function lastFinishedAt(redis: Redis, queue: Queue): Promise<number> {
  const [, score] = await redis.zrevrange(queue.toKey("completed"), 0, 0, "WITHSCORES");
  return score === undefined ? Date.now() : Number(score);
}
