import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { CustomerIndex } from "../../src/store/customer-index.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  type PipelineHarness,
  startPipeline,
} from "../support/pipeline-harness.js";

/**
 * The address index (`fu:who:<n>`: an address's keyed hash → the customer ids that used it) finds
 * a customer's records, with their name and addresses, by address (the console, `erase --email`,
 * an email reply that names no message). An entry lives as long as the record of the latest
 * purchase filed with it, RECORD_RETENTION_DAYS after its last step (a purchase that planned
 * nothing: after it was taken in), not two years: the customer id it holds would outlive every
 * record of theirs.
 */

const DAY = 86_400_000;
let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

/** Publishes a purchase made now, and waits until it is taken in. */
async function bought(
  p: PipelineHarness,
  name: string,
  customer: Record<string, string>,
  category: string,
  price: string,
): Promise<void> {
  const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
  const order = { id: `evt-${name}`, orderId: `ord-${name}`, occurredAt, customer };
  await p.publisher.publish(purchaseInput({ ...order, items: [item(category, price)] }) as never);
  expect(await eventProcessed(p, `evt-${name}`)).toBe("completed");
}

describe("the address index's entries", () => {
  it("last as long as the purchase's record, no longer", async () => {
    pipeline = await startPipeline("address-index-retention");
    const p = pipeline;
    const ana = { id: "cus-ana", email: "ana.retention@example.com", phone: "+447400900555" };
    await bought(p, "kettle", ana, "kitchenware", "75.00");
    const expiresAt = await p.store.recordExpiresAt("evt-kettle");
    expect(expiresAt).toBeGreaterThan(Date.now() + 90 * DAY);
    const at = (time: number) => new CustomerIndex(p.redis, p.prefix, { now: () => time });
    for (const address of ["ana.retention@example.com", "+447400900555"]) {
      expect(await at(expiresAt ?? 0).customersOf(address)).toEqual(["cus-ana"]);
      expect(await at((expiresAt ?? 0) + DAY).customersOf(address)).toEqual([]);
    }
  });

  it("of a purchase that planned nothing last RECORD_RETENTION_DAYS", async () => {
    pipeline = await startPipeline("address-index-retention-none", {
      env: { RECORD_RETENTION_DAYS: "30" },
    });
    const p = pipeline;
    await bought(
      p,
      "paper",
      { id: "cus-bo", email: "bo.retention@example.com" },
      "newspapers",
      "2.50",
    );
    expect((await p.events.getJob("evt-paper"))?.returnvalue).toMatchObject({ planned: 0 });
    const at = (days: number) =>
      new CustomerIndex(p.redis, p.prefix, { now: () => Date.now() + days * DAY });
    expect(await at(29).customersOf("bo.retention@example.com")).toEqual(["cus-bo"]);
    expect(await at(31).customersOf("bo.retention@example.com")).toEqual([]);
  });
});
