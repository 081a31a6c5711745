import { describe, expect, it } from "vitest";
import type { PurchaseCompleted } from "../../src/domain/events.js";
import {
  decodePurchase,
  decodeStored,
  encodeKept,
  encodePurchase,
  keptPart,
} from "../../src/store/purchase-codec.js";
import { item, purchase } from "../support/fixtures.js";

describe("stored purchases", () => {
  const tv = purchase({
    items: [
      item("televisions", "899.00", { name: "OLED TV 55 inch", sku: "TV-55" }),
      item("cables", "25.00", { name: "HDMI cable" }),
    ],
  });

  it("come back exactly as they were saved", () => {
    expect(decodePurchase(encodePurchase(tv))).toEqual(tv);
  });

  it("keep names and text in any script intact", () => {
    const unicode = purchase({
      customer: { id: "c-ü", name: "Zoë Ñúñez 山田", email: "zoe@example.com" },
      items: [item("furniture", "540.00", { name: "Sofa « Ølstykke » 🛋️" })],
    });
    expect(decodePurchase(encodePurchase(unicode))).toEqual(unicode);
  });

  it("take well under half the bytes of the JSON", () => {
    const json = Buffer.byteLength(JSON.stringify(tv));
    expect(encodePurchase(tv).length).toBeLessThan(json / 2);
  });

  it("read purchases stored as plain JSON by earlier versions", () => {
    expect(decodePurchase(Buffer.from(JSON.stringify(tv)))).toEqual(tv);
  });

  it("refuse a format they do not know, naming it", () => {
    expect(() => decodePurchase(Buffer.of(9, 1, 2, 3))).toThrow(/unknown format \(first byte 9\)/);
  });
});

describe("stored purchases in a currency whose minor unit changed (HUF, IDR, COP, IQD, …)", () => {
  const forints = purchase({
    currency: "HUF",
    items: [item("televisions", "1299.50", { sku: "TV" }), item("cables", "1300", { sku: "HDMI" })],
  });
  /** The purchase as versions up to 6 December 2026 read it: HUF without decimals. */
  const asFormerlyRead = (event: PurchaseCompleted, factor: number): PurchaseCompleted => ({
    ...event,
    items: event.items.map((entry) => ({
      ...entry,
      unitPrice: { ...entry.unitPrice, minor: entry.unitPrice.minor / factor },
    })),
    total: { ...event.total, minor: event.total.minor / factor },
  });
  /**
   * What such a version stored: format 1, the JSON deflated against the dictionary (the same body
   * as today's format 3, which only the first byte tells apart), or format 2 for the kept part.
   */
  const formerBytes = (encoded: Buffer, format: number) =>
    Buffer.concat([Buffer.of(format), encoded.subarray(1)]);

  it("keep their decimals (1299.50 HUF is 129950 minor units)", () => {
    expect(forints.total).toEqual({ minor: 259_950, currency: "HUF" });
    expect(forints.items[0]?.unitPrice).toEqual({ minor: 129_950, currency: "HUF" });
    expect(decodePurchase(encodePurchase(forints))).toEqual(forints);
    const kept = keptPart(forints);
    expect(decodeStored(encodeKept(kept))).toEqual({ kind: "kept", kept });
  });

  it("written by versions up to 6 December 2026 are read in today's minor units", () => {
    const whole = purchase({
      currency: "HUF",
      items: [item("televisions", "1300", { sku: "TV" })],
    });
    expect(whole.total.minor).toBe(130_000);
    const former = asFormerlyRead(whole, 100);
    expect(former.total.minor).toBe(1300);
    expect(decodePurchase(formerBytes(encodePurchase(former), 1))).toEqual(whole);
    expect(decodePurchase(Buffer.from(JSON.stringify(former)))).toEqual(whole);
    expect(decodeStored(formerBytes(encodeKept(keptPart(former)), 2))).toEqual({
      kind: "kept",
      kept: keptPart(whole),
    });
    const dinars = purchase({ currency: "IQD", items: [item("cables", "5", { sku: "C" })] });
    expect(
      decodePurchase(formerBytes(encodePurchase(asFormerlyRead(dinars, 1000)), 1)).total,
    ).toEqual({ minor: 5000, currency: "IQD" });
  });

  it("leave every other currency's purchase stored as before: format 1, read as it is", () => {
    const pounds = purchase({ items: [item("cables", "25.00")] });
    expect(encodePurchase(pounds)[0]).toBe(1);
    expect(encodeKept(keptPart(pounds))[0]).toBe(2);
    const yen = purchase({ currency: "JPY", items: [item("cables", "1999")] });
    expect(encodePurchase(yen)[0]).toBe(1);
    expect(decodePurchase(encodePurchase(yen)).total).toEqual({ minor: 1999, currency: "JPY" });
    // Formats 3 and 4 are for the currencies whose minor unit changed, which formats 1 and 2
    // hold in the former units.
    expect(encodePurchase(forints)[0]).toBe(3);
    expect(encodeKept(keptPart(forints))[0]).toBe(4);
  });
});
