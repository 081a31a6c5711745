import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { CustomerIndex } from "../../src/store/customer-index.js";
import { sumHours } from "../../src/store/delivery-ledger.js";
import { hourOf, StoreKeys, shardScope } from "../../src/store/keys.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  startPipeline,
  waitForState,
} from "../support/pipeline-harness.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const now = () => DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

describe("an intake retried after a transient error", () => {
  it("finishes what the first attempt began: skips counted, customer indexed by address", async () => {
    pipeline = await startPipeline("intake-retry");
    const p = pipeline;
    // The shard's ledger hour holds a value of the wrong type: the first attempt fails after the
    // purchase was recorded in the customer's history (as a Redis failing over mid-intake would).
    const keys = new StoreKeys(
      shardScope(p.prefix, await p.shardOfCustomer("cus-rv-retry"), p.shards),
    );
    // This hour's and the next's: the intake may run after the hour turns.
    const hourKeys = [0, 1].map((n) => keys.ledgerHour(hourOf(Date.now()) + n));
    for (const hourKey of hourKeys) await p.redis.set(hourKey, "not a hash");
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rv-retry",
        orderId: "ord-rv-retry",
        occurredAt: now(),
        // No phone: the big-ticket check-in is skipped at planning (no-contact).
        customer: { id: "cus-rv-retry", email: "rv-retry@example.com", phone: undefined },
        items: [item("televisions", "700.00")],
      }) as never,
    );
    await eventually(
      async () =>
        (await (await p.events.getJob("evt-rv-retry"))?.getState()) === "delayed"
          ? true
          : undefined,
      "the job to wait for its next attempt",
    );
    for (const hourKey of hourKeys) await p.redis.del(hourKey);
    expect(await eventProcessed(p, "evt-rv-retry")).toBe("completed");
    await waitForState(p, "evt-rv-retry", "big-ticket.thank-you", "scheduled");

    // The skip at planning is in the owners' report, as it is without the retry.
    const hours = await p.stores.of(0).ledger.hours(Date.now() - 7_200_000, Date.now() + 3_600_000);
    const fields = sumHours(hours);
    expect(fields.get("skipped|sms|check-in|big-ticket") ?? 0).toBe(1);
    // The customer is found by their address (followups customer --email, erase --email).
    const index = new CustomerIndex(p.redis, p.prefix);
    expect(await index.customersOf("rv-retry@example.com")).toEqual(["cus-rv-retry"]);
  });

  it("control: the same purchase without the fault counts the skip and indexes the customer", async () => {
    pipeline = await startPipeline("intake-retry-control");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rv-ok",
        orderId: "ord-rv-ok",
        occurredAt: now(),
        customer: { id: "cus-rv-ok", email: "rv-ok@example.com", phone: undefined },
        items: [item("televisions", "700.00")],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-rv-ok")).toBe("completed");
    const hours = await p.stores.of(0).ledger.hours(Date.now() - 7_200_000, Date.now() + 3_600_000);
    expect(sumHours(hours).get("skipped|sms|check-in|big-ticket") ?? 0).toBe(1);
    const index = new CustomerIndex(p.redis, p.prefix);
    expect(await index.customersOf("rv-ok@example.com")).toEqual(["cus-rv-ok"]);
  });
});

describe("a purchase brought back", () => {
  it("counts it once, also when the same event is re-published months later", async () => {
    pipeline = await startPipeline("brought-back-once");
    const p = pipeline;
    const customer = { id: "cus-rv-back", email: "rv-back@example.com" };
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rv-first",
        orderId: "ord-rv-first",
        occurredAt:
          DateTime.utc()
            .minus({ hours: 2 })
            .startOf("second")
            .toISO({ suppressMilliseconds: true }) ?? "",
        customer,
        items: [item("kitchenware", "75.00")],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-rv-first")).toBe("completed");
    // The thank-you goes out (now: its hour is past).
    await waitForState(p, "evt-rv-first", "thank-you.thank-you", "sent");
    // Purchase times are whole seconds: the next one comes in a second that began after the send
    // (remembered as the customer's latest sent follow-up once its bookkeeping is done).
    const keys = new StoreKeys(
      shardScope(p.prefix, await p.shardOfCustomer("cus-rv-back"), p.shards),
    );
    const sentAt = await eventually(async () => {
      const latest = await p.redis.get(keys.lastSent("cus-rv-back"));
      return latest ? (JSON.parse(latest) as { at: number }).at : undefined;
    }, "the thank-you to be the customer's latest sent follow-up");
    await eventually(
      async () => (Math.floor(Date.now() / 1000) * 1000 >= sentAt ? true : undefined),
      "a second that began after the thank-you was sent",
    );
    // A small purchase after it (no follow-up of its own): brought back by the thank-you.
    const second = purchaseInput({
      id: "evt-rv-second",
      orderId: "ord-rv-second",
      occurredAt: now(),
      customer,
      items: [item("kitchenware", "20.00")],
    });
    await p.publisher.publish(second as never);
    expect(await eventProcessed(p, "evt-rv-second")).toBe("completed");
    const backOf = async () =>
      sumHours(
        await p.stores.of(0).ledger.hours(Date.now() - 7_200_000, Date.now() + 3_600_000),
      ).get("back|email|thank-you|thank-you|recent") ?? 0;
    expect(await backOf()).toBe(1);

    // Remembered as long as the event is: in its record, so a publisher that replays its outbox
    // while the event is recognised (months, with a check-in pending) counts it no second time.
    expect(await p.redis.hget(keys.eventRecord("evt-rv-second"), "cb")).toBe("1");
    await (await p.events.getJob("evt-rv-second"))?.remove();
    await p.publisher.publish(second as never);
    expect(await eventProcessed(p, "evt-rv-second")).toBe("completed");
    expect(await backOf()).toBe(1);
  });
});
