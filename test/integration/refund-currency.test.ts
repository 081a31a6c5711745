import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, expect, inject, it } from "vitest";
import { afterRefunds } from "../../src/domain/refund.js";
import { OrderStore } from "../../src/store/order-store.js";
import type { RedisClient } from "../../src/store/redis-client.js";
import { item, purchase } from "../support/fixtures.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";

/**
 * A refund recorded before its purchase, in another currency than the purchase, is ignored when
 * the purchase arrives (README: After the purchase): its amount and the items it names alike.
 */

const DAY = 86_400_000;
let redis: RedisClient;
let prefix: string;

beforeAll(() => {
  redis = new Redis(inject("redisUrl"), { maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(() => {
  prefix = uniquePrefix("refund-currency");
});
afterEach(async () => {
  await deleteKeysWithPrefix(redis, prefix);
});

it("a refund in another currency, naming items, that came before the purchase takes nothing off it", async () => {
  const orders = new OrderStore(redis, prefix);
  const order = await orders.addRefund(
    "ord-1",
    "ref-1",
    { amount: { minor: 80_000, currency: "USD" }, items: [{ sku: "TV", quantity: 1 }] },
    DAY,
  );
  const tv = purchase({
    orderId: "ord-1",
    items: [item("televisions", "700.00", { sku: "TV", quantity: 1 })],
  });
  expect(tv.total.currency).toBe("GBP");
  const after = afterRefunds(tv, order);
  // Not taken as a full refund (every item back): the purchase plans its follow-ups.
  expect(after.full).toBe(false);
  expect(after.event.items.map((i) => `${i.quantity} ${i.sku}`)).toEqual(["1 TV"]);
  expect(after.event.total).toEqual(tv.total);

  // With a second item, the TV is not taken out either (its check-in stays).
  const two = purchase({
    orderId: "ord-1",
    items: [
      item("televisions", "700.00", { sku: "TV", quantity: 1 }),
      item("cables", "10.00", { sku: "HDMI", quantity: 1 }),
    ],
  });
  expect(afterRefunds(two, order).event.items.map((i) => `${i.quantity} ${i.sku}`)).toEqual([
    "1 TV",
    "1 HDMI",
  ]);
});

it("one in the purchase's currency still takes its items and amount off", async () => {
  const orders = new OrderStore(redis, prefix);
  const order = await orders.addRefund(
    "ord-2",
    "ref-2",
    { amount: { minor: 65_000, currency: "GBP" }, items: [{ sku: "TV", quantity: 1 }] },
    DAY,
  );
  const two = purchase({
    orderId: "ord-2",
    items: [
      item("televisions", "700.00", { sku: "TV", quantity: 1 }),
      item("cables", "10.00", { sku: "HDMI", quantity: 1 }),
    ],
  });
  const after = afterRefunds(two, order);
  expect(after.full).toBe(false);
  expect(after.event.items.map((i) => `${i.quantity} ${i.sku}`)).toEqual(["1 HDMI"]);
  expect(after.event.total.minor).toBe(71_000 - 65_000);
});
