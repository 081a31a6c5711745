import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { runErase } from "../../src/cli/erase-command.js";
import { CustomerIndex } from "../../src/store/customer-index.js";
import { captureIo } from "../support/capture-io.js";
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

describe("followups erase --email once the address index has forgotten the address", () => {
  it("says that what remains of such a customer (their history, without addresses) is erased by their id, and erasing by id works", async () => {
    pipeline = await startPipeline("address-index-erase-hint");
    const p = pipeline;
    const address = "cy.retention@example.com";
    await bought(p, "lamp", { id: "cus-cy", email: address }, "kitchenware", "75.00");
    // As when the purchase's record has expired: its index entry is gone, and so is the finished
    // job on the input queue (kept an hour), which erase --email also searches.
    await new CustomerIndex(p.redis, p.prefix).forget("cus-cy", [address]);
    await (await p.events.getJob("evt-lamp"))?.remove();
    Object.assign(process.env, p.commandEnv);
    await expect(
      runErase(undefined, { config: p.configDir, email: address }, captureIo()),
    ).rejects.toMatchObject({
      code: 1,
      message:
        "no customer is known with that address; a customer is found by an address only while the record of a purchase of theirs with it is kept (RECORD_RETENTION_DAYS after its last step): what remains after that (their purchase history, kept two years without any address) is erased by their customer id, followups erase ID",
    });
    const io = captureIo();
    expect(await runErase("cus-cy", { config: p.configDir, json: true }, io)).toBe(0);
    // The receipt names the customer by keyed hash; the purchase its history listed is erased.
    expect(JSON.parse(io.output())).toMatchObject({
      customer: expect.stringMatching(/^k:/),
      purchases: 1,
    });
  });
});
