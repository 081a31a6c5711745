import { type Job, Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { JobFailer, MoveRefused } from "../../src/operations/job-moves.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";

let redis: Redis;
const prefix = uniquePrefix("job-moves");
const closing: { close(): Promise<unknown> }[] = [];

beforeAll(() => {
  redis = new Redis(inject("redisUrl"), { maxRetriesPerRequest: null });
});
afterEach(async () => {
  for (const item of closing.splice(0).reverse()) await item.close();
});
afterAll(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

/** A failed job of a queue elsewhere, as `followups migrate` and `reshard` copy it. */
async function failedJob(name: string): Promise<Job & { id: string }> {
  const source = new Queue(name, { connection: redis, prefix: `${prefix}-source` });
  closing.push(source);
  const job = await source.add("email", { e: "evt", s: "step" }, { jobId: `${name}-failed` });
  const worker = new Worker(name, null, { connection: redis, prefix: `${prefix}-source` });
  closing.push(worker);
  const taken = (await worker.getNextJob("token")) as Job;
  await taken.moveToFailed(new Error("bounced"), "token");
  return (await source.getJob(job.id ?? "")) as Job & { id: string };
}

/** A paused queue with a job waiting in it (`held`). */
async function pausedQueueHolding(name: string, held: string): Promise<Queue> {
  const queue = new Queue(name, { connection: redis, prefix });
  closing.push(queue);
  await queue.add("email", { e: held, s: "step" }, { jobId: held });
  await queue.pause();
  return queue;
}

describe("failing a copied job again", () => {
  it("fails it in a paused queue and leaves the queue paused, what waits there untouched", async () => {
    const job = await failedJob("paused-target");
    const target = await pausedQueueHolding("paused-target", "held");
    const failer = new JobFailer(redis);
    closing.push(failer);
    await failer.failAgainIn(target, job);
    expect(await (await target.getJob(job.id))?.getState()).toBe("failed");
    expect((await target.getJob(job.id))?.failedReason).toBe("bounced");
    expect(await target.isPaused()).toBe(true);
    expect(await (await target.getJob("held"))?.getState()).toBe("waiting");
  });

  it("refuses to resume a paused queue that workers are connected to: they would take what it holds back", async () => {
    const job = await failedJob("watched-target");
    const target = await pausedQueueHolding("watched-target", "held");
    const processed: string[] = [];
    const workerConnection = redis.duplicate();
    closing.push({ close: async () => workerConnection.disconnect() });
    const worker = new Worker(
      "watched-target",
      async (taken) => {
        processed.push(taken.id ?? "");
      },
      { connection: workerConnection, prefix },
    );
    closing.push(worker);
    await worker.waitUntilReady();
    await expect.poll(() => target.getWorkersCount(), { timeout: 5_000 }).toBeGreaterThan(0);
    const failer = new JobFailer(redis);
    closing.push(failer);
    await expect(failer.failAgainIn(target, job)).rejects.toThrow(MoveRefused);
    await expect(failer.failAgainIn(target, job)).rejects.toThrow(
      /paused and has workers connected/,
    );
    expect(await target.isPaused()).toBe(true);
    // The refusal is complete once the calls have settled: the queue was never resumed, not even
    // for a moment (every resume writes "resumed" to the queue's events stream, in the same
    // script), so the worker could never take a job, then or later; and it took none.
    const events = await redis.xrange(target.keys.events as string, "-", "+");
    const written = events.map(([, fields]) => fields[fields.indexOf("event") + 1]);
    expect(written).toContain("paused");
    expect(written).not.toContain("resumed");
    expect(written).not.toContain("active");
    expect(await (await target.getJob("held"))?.getState()).toBe("waiting");
    expect(processed).toEqual([]);
  });
});
