import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { OrderStore } from "../../src/store/order-store.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { keysHolding } from "../support/personal-data-scan.js";
import {
  eventually,
  type PipelineHarness,
  startPipeline,
  stepRecordOf,
} from "../support/pipeline-harness.js";

/**
 * An erasure taken in while the customer's purchases are: the worker takes in events
 * concurrently, so some purchases are taken in before the erasure (and erased by it), some after
 * (dropped), and some at the same time, between the scripts that write a purchase's steps, its
 * order link and its address entries. However they interleave, nothing of the customer is left.
 */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const PURCHASES = 200;
const CUSTOMER = { id: "cus-burst", email: "burst@example.com", phone: "+447400111222" };

describe("an erasure in the middle of its customer's purchases", () => {
  it("leaves no record, order link, address entry or job of theirs, however intake interleaves", async () => {
    pipeline = await startPipeline("erase-burst");
    const p = pipeline;
    const bought = DateTime.utc().minus({ seconds: 10 }).startOf("second");
    const ids = Array.from({ length: PURCHASES }, (_, i) => `evt-burst-${i}`);
    // All at once, the erasure in the middle: the worker finds a backlog and takes in up to
    // INTAKE_CONCURRENCY events at a time, the erasure among purchases before and after it.
    const purchase = (id: string) =>
      p.publisher.publish(
        purchaseInput({
          id,
          orderId: `ord-${id}`,
          occurredAt: bought.toISO({ suppressMilliseconds: true }) ?? "",
          customer: CUSTOMER,
          items: [item("kitchenware", "75.00"), item("television", "899.00")],
        }) as never,
      );
    const half = PURCHASES / 2;
    await Promise.all(ids.slice(0, half).map(purchase));
    await p.publisher.publish({
      type: "customer.erased",
      id: "erase-burst",
      occurredAt: DateTime.utc().toISO() ?? "",
      customerId: CUSTOMER.id,
    });
    await Promise.all(ids.slice(half).map(purchase));
    // Every event finished, or taken off the queue by the erasure before it ran.
    await eventually(async () => {
      for (const id of [...ids, "erase-burst"]) {
        const state = await (await p.events.getJob(id))?.getState();
        if (state !== undefined && state !== "completed" && state !== "failed") return undefined;
      }
      return true;
    }, "every event of the burst to be taken in");
    expect(await p.events.getFailedCount()).toBe(0);
    // The erasure ran amid the burst: it took purchases in before it (their finished jobs, which
    // hold the customer, it removes) and dropped purchases taken in after it or alongside it.
    const outcomes = await Promise.all(
      ids.map(async (id) => {
        const job = await p.events.getJob(id);
        return !job ? "removed" : job.returnvalue?.erased ? "dropped" : "kept";
      }),
    );
    expect(outcomes).toContain("removed");
    expect(outcomes).toContain("dropped");
    expect(outcomes).not.toContain("kept");

    expect(
      await keysHolding(p.redis, p.prefix, [CUSTOMER.id, CUSTOMER.email, "7400111222"]),
    ).toEqual([]);
    const orders = new OrderStore(p.redis, p.prefix);
    for (const id of ids) {
      expect((await orders.get(`ord-${id}`)).eventIds, `ord-${id}`).toEqual([]);
      expect(await stepRecordOf(p, id, "thank-you.thank-you"), id).toBeUndefined();
    }
    for (const queue of p.followUpQueues)
      expect(await queue.getJobCountByTypes("waiting", "delayed", "active", "prioritized")).toBe(0);
  });
});
