import { UnrecoverableError, Worker } from "bullmq";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { PURCHASE_EVENTS_QUEUE, queuePrefix } from "../../src/queue/names.js";
import { StoreKeys, shardScope } from "../../src/store/keys.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  startPipeline,
  waitForState,
} from "../support/pipeline-harness.js";

/** An event whose intake fails on an error that is not the event's, and the same event published again. */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const now = () => DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
const pan = (id: string, customerId: string) =>
  purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt: now(),
    customer: { id: customerId, email: `${customerId}@example.com` },
    items: [item("kitchenware", "75.00")],
  });

describe("an intake that fails on an error", () => {
  it("is tried again until it succeeds, and logged without the event's content", async () => {
    pipeline = await startPipeline("intake-retry");
    const p = pipeline;
    // The customer's history key holds a value of the wrong type: every attempt fails (WRONGTYPE)
    // until it is gone, as a Redis failing over or refusing writes would make them fail.
    const history = new StoreKeys(
      shardScope(p.prefix, p.shardOfCustomer("cus-retry"), p.shards),
    ).customerHistory("cus-retry");
    await p.redis.set(history, "not a hash");
    await p.publisher.publish(pan("evt-retry", "cus-retry") as never);
    const retried = await eventually(
      async () => p.logs.find((line) => line.msg === "event intake error; will retry"),
      "the first attempt to fail",
    );
    expect(retried).toMatchObject({ jobId: "evt-retry", attempts: 1 });
    expect(JSON.stringify(retried)).not.toContain("cus-retry@example.com");
    await eventually(
      async () =>
        (await (await p.events.getJob("evt-retry"))?.getState()) === "delayed" ? true : undefined,
      "the job to wait for its next attempt",
    );

    await p.redis.del(history);
    expect(await eventProcessed(p, "evt-retry")).toBe("completed");
    await waitForState(p, "evt-retry", "thank-you.thank-you", "scheduled");
  });

  it("that failed is tried again when the same event is published again", async () => {
    pipeline = await startPipeline("intake-republish", { startWorker: false });
    const p = pipeline;
    const event = pan("evt-again", "cus-again");
    await p.publisher.publish(event as never);
    // A worker that failed it for good (as intake does after its last attempt).
    const failing = new Worker(
      PURCHASE_EVENTS_QUEUE,
      async () => {
        throw new UnrecoverableError("Redis was away on every attempt");
      },
      {
        connection: p.redis,
        prefix: queuePrefix(p.prefix, PURCHASE_EVENTS_QUEUE, p.commandEnv.REDIS_CLUSTER === "true"),
      },
    );
    expect(await eventProcessed(p, "evt-again")).toBe("failed");
    await failing.close();

    await p.startWorker();
    // The same event again: not a conflict, and not a no-op either.
    expect(await p.publisher.publish(event as never)).toEqual({
      eventId: "evt-again",
      jobId: "evt-again",
    });
    expect(await eventProcessed(p, "evt-again")).toBe("completed");
    await waitForState(p, "evt-again", "thank-you.thank-you", "scheduled");
  });

  it("an erasure published again is the same event, although its job keeps only its id", async () => {
    pipeline = await startPipeline("intake-erase-again");
    const p = pipeline;
    const erasure = {
      type: "customer.erased" as const,
      id: "erase-again",
      occurredAt: now(),
      customerId: "cus-erased",
    };
    await p.publisher.publish(erasure);
    expect(await eventProcessed(p, "erase-again")).toBe("completed");
    expect((await p.events.getJob("erase-again"))?.data).toEqual({
      type: "customer.erased",
      id: "erase-again",
    });
    // A publisher retrying after a timeout: a no-op, not "event id reused".
    expect(await p.publisher.publish(erasure)).toEqual({
      eventId: "erase-again",
      jobId: "erase-again",
    });
    // Another event under that id is still refused.
    await expect(
      p.publisher.publish({ ...erasure, type: "customer.unsubscribed", channels: "all" } as never),
    ).rejects.toThrow("event id reused with different content: erase-again");
  });
});
