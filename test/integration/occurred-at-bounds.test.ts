import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { EventPublisher, InvalidEventError } from "../../src/publisher.js";
import { purchaseInput } from "../support/fixtures.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";

/**
 * occurredAt is bounded where events come in: not before 2000, not more than a day after the
 * receiver's clock (the intake's, and the publisher's for the HTTP route and Node services).
 */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const inDays = (days: number) =>
  DateTime.utc().plus({ days }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

async function failedReason(p: PipelineHarness, jobId: string): Promise<string> {
  const job = await eventually(async () => {
    // Read the job after its state: a job read first may still show the running attempt.
    const failed = (await p.events.getJobState(jobId)) === "failed";
    return failed ? p.events.getJob(jobId) : undefined;
  }, `${jobId} to fail`);
  expect(job.attemptsMade).toBe(1);
  return job.failedReason;
}

describe("occurredAt bounds at intake", () => {
  it("a purchase three days ahead of the worker's clock fails at once with the reason", async () => {
    pipeline = await startPipeline("future-intake");
    const occurredAt = inDays(3);
    await pipeline.events.add(
      "purchase.completed",
      purchaseInput({ id: "evt-future", occurredAt }),
      { jobId: "evt-future" },
    );
    expect(await failedReason(pipeline, "evt-future")).toMatch(
      new RegExp(
        `^invalid event: occurredAt: ${occurredAt} is more than a day after now \\(\\d{4}-[^)]+Z\\); expected the time the purchase happened$`,
      ),
    );
    expect(await pipeline.store.loadEvent("evt-future")).toBeUndefined();
  });

  it("a refund dated 1999 fails at once with the reason", async () => {
    pipeline = await startPipeline("past-intake");
    await pipeline.events.add(
      "purchase.refunded",
      { id: "ref-1999", occurredAt: "1999-12-31T23:59:59Z", orderId: "ord-1" },
      { jobId: "ref-1999" },
    );
    expect(await failedReason(pipeline, "ref-1999")).toBe(
      "invalid event: occurredAt: 1999-12-31T23:59:59Z is before 2000-01-01T00:00:00Z; expected the time the refund happened",
    );
  });
});

describe("occurredAt bounds in EventPublisher", () => {
  it("refuses an event more than a day ahead of its clock, and enqueues nothing", async () => {
    pipeline = await startPipeline("future-publish", { startWorker: false });
    const occurredAt = inDays(2);
    const publishing = pipeline.publisher.publish(
      purchaseInput({ id: "evt-ahead", occurredAt }) as never,
    );
    await expect(publishing).rejects.toBeInstanceOf(InvalidEventError);
    await expect(publishing).rejects.toMatchObject({
      problems: [
        {
          path: "occurredAt",
          message: expect.stringMatching(
            new RegExp(`^${occurredAt} is more than a day after now \\(.+\\); expected the time`),
          ),
        },
      ],
    });
    expect(await pipeline.events.getJob("evt-ahead")).toBeUndefined();
  });

  it("judges by its `clock` option: a publisher whose clock runs ahead lets the worker decide", async () => {
    pipeline = await startPipeline("skewed-publish");
    const skewed = new EventPublisher({
      connection: pipeline.env.REDIS_URL,
      prefix: pipeline.prefix,
      clock: () => DateTime.utc().plus({ days: 3 }),
    });
    try {
      const occurredAt = inDays(3);
      await skewed.publish(purchaseInput({ id: "evt-skewed", occurredAt }) as never);
      expect(await failedReason(pipeline, "evt-skewed")).toContain(
        `occurredAt: ${occurredAt} is more than a day after now`,
      );
    } finally {
      await skewed.close();
    }
  });
});
