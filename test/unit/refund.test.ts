import { describe, expect, it } from "vitest";
import { afterRefunds, type OrderRefunds } from "../../src/domain/refund.js";
import { item, purchase } from "../support/fixtures.js";

const ORDER = purchase({
  items: [
    item("televisions", "700.00", { sku: "TV", quantity: 1 }),
    item("cables", "10.00", { sku: "HDMI", quantity: 3 }),
  ],
});
const none: OrderRefunds = { refunds: [], returns: [], fullyRefunded: false };

function left(order: OrderRefunds) {
  const after = afterRefunds(ORDER, order);
  return {
    full: after.full,
    total: after.event.total.minor,
    items: after.event.items.map((i) => `${i.quantity} ${i.sku}`),
  };
}

describe("a purchase after its refunds", () => {
  it("is unchanged without refunds (a free order is not a refunded one)", () => {
    expect(left(none)).toEqual({ full: false, total: 73_000, items: ["1 TV", "3 HDMI"] });
    const free = purchase({ items: [item("samples", "0.00")] });
    expect(afterRefunds(free, none).full).toBe(false);
  });

  it("loses the items handed back, at their prices", () => {
    expect(left({ ...none, returns: [{ sku: "TV", quantity: 1, priced: false }] })).toEqual({
      full: false,
      total: 3_000,
      items: ["3 HDMI"],
    });
    expect(left({ ...none, returns: [{ sku: "HDMI", quantity: 2, priced: false }] })).toEqual({
      full: false,
      total: 71_000,
      items: ["1 TV", "1 HDMI"],
    });
  });

  it("counts the amount a refund names instead of the items' prices", () => {
    const priced: OrderRefunds = {
      refunds: [{ minor: 65_000, currency: "GBP" }],
      returns: [{ sku: "TV", quantity: 1, priced: true }],
      fullyRefunded: false,
    };
    expect(left(priced)).toEqual({ full: false, total: 8_000, items: ["3 HDMI"] });
  });

  it("never hands back more than was bought, nor an item not in the order", () => {
    expect(
      left({
        ...none,
        returns: [
          { sku: "HDMI", quantity: 2, priced: false },
          { sku: "HDMI", quantity: 5, priced: false },
          { sku: "TOASTER", quantity: 1, priced: false },
        ],
      }),
    ).toEqual({ full: false, total: 70_000, items: ["1 TV"] });
  });

  it("is fully refunded when every item is back, or nothing is left to pay", () => {
    expect(
      left({
        ...none,
        returns: [
          { sku: "TV", quantity: 1, priced: false },
          { sku: "HDMI", quantity: 3, priced: false },
        ],
      }).full,
    ).toBe(true);
    expect(left({ ...none, refunds: [{ minor: 73_000, currency: "GBP" }] }).full).toBe(true);
    expect(left({ ...none, fullyRefunded: true }).full).toBe(true);
    // A refund in another currency is not counted against a GBP order.
    expect(left({ ...none, refunds: [{ minor: 73_000, currency: "USD" }] }).total).toBe(73_000);
  });
});
