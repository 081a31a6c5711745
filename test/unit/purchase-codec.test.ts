import { describe, expect, it } from "vitest";
import { decodePurchase, encodePurchase } from "../../src/store/purchase-codec.js";
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
