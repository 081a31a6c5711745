import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { CustomerHistoryStore } from "../../src/store/customer-history.js";
import { CustomerIndex } from "../../src/store/customer-index.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

describe("indexes for people", () => {
  it("finds a customer's purchases, and the customers of an address by its keyed hash only", async () => {
    pipeline = await startPipeline("customer-index");
    const p = pipeline;
    const at = (hoursAgo: number) =>
      DateTime.utc().minus({ hours: hoursAgo }).startOf("second").toISO({
        suppressMilliseconds: true,
      }) ?? "";
    const buy = (id: string, hoursAgo: number, customer: Record<string, unknown>) =>
      purchaseInput({
        id,
        orderId: `ord-${id}`,
        occurredAt: at(hoursAgo),
        items: [item("kitchenware", "75.00")],
        customer,
      });
    await p.publisher.publish(buy("evt-1", 5, { id: "cus-ana" }) as never);
    await p.publisher.publish(buy("evt-2", 3, { id: "cus-ana" }) as never);
    // The same email address at checkout as a guest, with another phone.
    await p.publisher.publish(
      buy("evt-3", 1, { id: "guest-77", email: "Ana@Example.com", phone: "+14155550123" }) as never,
    );
    const history = new CustomerHistoryStore(p.redis, p.prefix);
    const purchases = await eventually(async () => {
      const listed = await history.purchasesOf("cus-ana");
      return listed.length === 2 ? listed : undefined;
    }, "both purchases of cus-ana to be recorded");
    expect(purchases.map((x) => x.eventId)).toEqual(["evt-2", "evt-1"]);

    const index = new CustomerIndex(p.redis, p.prefix);
    const byEmail = await eventually(async () => {
      const found = await index.customersOf(" ana@example.com");
      return found.length === 2 ? found : undefined;
    }, "both customers of the address");
    expect(byEmail).toEqual(["guest-77", "cus-ana"]);
    expect(await index.customersOf("+442079460958")).toEqual(["cus-ana"]);
    expect(await index.customersOf("+14155550123")).toEqual(["guest-77"]);
    expect(await index.customersOf("nobody@example.com")).toEqual([]);

    // No key names an address, and the index holds customer ids only.
    const keys = [
      ...(await p.redis.keys(`${p.prefix}:*`)),
      ...(await p.redis.keys(`{${p.prefix}*`)),
    ];
    const names = keys.join("\n").toLowerCase();
    for (const personal of ["ana@example.com", "4155550123", "2079460958"])
      expect(names).not.toContain(personal);
    const indexKeys = keys.filter((key) => key.includes(":fu:who:"));
    expect(indexKeys).toHaveLength(3);
    for (const key of indexKeys) {
      expect(
        Object.keys(await p.redis.hgetall(key)).every((id) => /^(cus-ana|guest-77)$/.test(id)),
      ).toBe(true);
      const ttl = await p.redis.pttl(key);
      expect(ttl).toBeGreaterThan(700 * 86_400_000);
    }
  });
});
