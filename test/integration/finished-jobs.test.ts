import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logger.js";
import { createFinishedJobsSweeper } from "../../src/queue/finished-jobs.js";
import { purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  type PipelineHarness,
  startPipeline,
} from "../support/pipeline-harness.js";

/** Finished intake jobs carry whole events: they go at their age, whether or not others follow. */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const logger = createLogger({ level: "silent", pretty: false });
const at = () => DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

/** Two purchases taken in and two refused (a zone that is none), nothing after them. */
async function quietNight(p: PipelineHarness) {
  for (const id of ["evt-old", "evt-new"])
    await p.publisher.publish(
      purchaseInput({ id, orderId: `ord-${id}`, occurredAt: at() }) as never,
    );
  for (const id of ["bad-old", "bad-new"])
    await p.events.add(
      "purchase.completed",
      purchaseInput({ id, occurredAt: at(), customer: { id: `cus-${id}`, timezone: "Mars/Base" } }),
      { jobId: id, attempts: 1 },
    );
  for (const id of ["evt-old", "evt-new"]) expect(await eventProcessed(p, id)).toBe("completed");
  for (const id of ["bad-old", "bad-new"]) expect(await eventProcessed(p, id)).toBe("failed");
}

/** Says a finished job finished `ago` ms ago, as BullMQ's sets order them. */
async function finishedAgo(
  p: PipelineHarness,
  set: "completed" | "failed",
  id: string,
  ago: number,
) {
  const key = set === "completed" ? p.events.keys.completed : p.events.keys.failed;
  if (!key) throw new Error(`no ${set} key`);
  expect(await p.redis.zadd(key, "XX", "CH", Date.now() - ago, id)).toBe(1);
}

describe("finished jobs", () => {
  it("go at their age in a quiet queue: a purchase after an hour, a refused event after 30 days", async () => {
    pipeline = await startPipeline("finished-jobs");
    const p = pipeline;
    await quietNight(p);
    await finishedAgo(p, "completed", "evt-old", 2 * HOUR);
    await finishedAgo(p, "failed", "bad-old", 31 * DAY);

    const sweeper = createFinishedJobsSweeper({
      queues: [{ queue: p.events, completedMs: HOUR, failedMs: 30 * DAY }],
      redis: p.redis,
      now: Date.now,
      logger,
    });
    expect(await sweeper.sweep()).toBe(2);
    expect(await p.events.getJob("evt-old")).toBeUndefined();
    expect(await p.events.getJob("bad-old")).toBeUndefined();
    expect(await p.events.getJob("evt-new")).toBeDefined();
    expect((await p.events.getJob("bad-new"))?.failedReason).toMatch(/Mars\/Base/);
    // Again: nothing more to do.
    expect(await sweeper.sweep()).toBe(0);
  });

  it("trim the queue's event stream, which repeats failure reasons, to the failed jobs' age", async () => {
    pipeline = await startPipeline("finished-stream");
    const p = pipeline;
    await quietNight(p);
    const stream = p.events.keys.events ?? "";
    const mentions = async (text: string) =>
      (await p.redis.xrange(stream, "-", "+")).filter(([, fields]) =>
        fields.join(" ").includes(text),
      ).length;
    expect(await mentions("Mars/Base")).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 20));

    const sweeper = createFinishedJobsSweeper({
      queues: [{ queue: p.events, completedMs: HOUR, failedMs: 10 }],
      redis: p.redis,
      now: Date.now,
      logger,
    });
    // The refused events are older than 10 ms: they go, and so does what the stream said of them.
    expect(await sweeper.sweep()).toBe(2);
    expect(await mentions("Mars/Base")).toBe(0);
    expect(await mentions("bad-new")).toBe(0);
    expect(await p.events.getJob("evt-new")).toBeDefined();
  });
});
