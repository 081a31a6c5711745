import { createHmac } from "node:crypto";
import { DateTime, Duration } from "luxon";
import { describe, expect, it } from "vitest";
import {
  buildDiscountOffer,
  codeExpiresAt,
  discountCode,
  normalizeCode,
  redemptionLabel,
} from "../../src/domain/discount-code.js";
import { rulesFrom, yaml } from "../support/fixtures.js";

const SECRET = "s3cret-for-tests";
const CROCKFORD_GROUP = "[0-9A-HJKMNP-TV-Z]{4}";

describe("discountCode", () => {
  it("is the prefix and three groups of Crockford base32 (60 bits)", () => {
    const code = discountCode(SECRET, "cus_1", "evt-1.big-ticket.thank-you", "THANKS");
    expect(code).toMatch(
      new RegExp(`^THANKS-${CROCKFORD_GROUP}-${CROCKFORD_GROUP}-${CROCKFORD_GROUP}$`),
    );
    expect(code).not.toMatch(/[ILOU]/);
  });

  it("is the first 60 bits of HMAC-SHA256(secret, JSON [v1, customer, follow-up]) in Crockford base32", () => {
    // Worked out here bit by bit, independently of the implementation's BigInt arithmetic.
    const hex = createHmac("sha256", SECRET)
      .update('["discount-code/v1","cus_1","fu-1"]')
      .digest("hex");
    const bits = [...hex.slice(0, 15)]
      .map((digit) => Number.parseInt(digit, 16).toString(2).padStart(4, "0"))
      .join("");
    const symbols = (bits.match(/.{5}/g) ?? [])
      .map((five) => "0123456789ABCDEFGHJKMNPQRSTVWXYZ"[Number.parseInt(five, 2)])
      .join("");
    expect(symbols).toBe("DJGVZN59K4P3");
    expect(discountCode(SECRET, "cus_1", "fu-1", "LOYAL")).toBe("LOYAL-DJGV-ZN59-K4P3");
    expect(discountCode(SECRET, "cus_1", "fu-1", "")).toBe("DJGV-ZN59-K4P3");
  });

  it("is the same on every retry of a follow-up", () => {
    const first = discountCode(SECRET, "cus_1", "fu-1", "THANKS");
    expect(discountCode(SECRET, "cus_1", "fu-1", "THANKS")).toBe(first);
  });

  it.each([
    ["another customer", ["cus_2", "fu-1", SECRET]],
    ["another follow-up", ["cus_1", "fu-2", SECRET]],
    ["another secret", ["cus_1", "fu-1", "other-secret"]],
  ] as const)("changes for %s", (_, [customer, followUp, secret]) => {
    const base = discountCode(SECRET, "cus_1", "fu-1", "X");
    expect(discountCode(secret, customer, followUp, "X")).not.toBe(base);
  });

  it("does not let ids run together (a|bc and ab|c differ)", () => {
    expect(discountCode(SECRET, "a", "bc", "X")).not.toBe(discountCode(SECRET, "ab", "c", "X"));
  });

  it("spreads over the code space: 5000 follow-ups, 5000 distinct codes", () => {
    const codes = new Set(
      Array.from({ length: 5000 }, (_, i) => discountCode(SECRET, "cus_1", `fu-${i}`, "")),
    );
    expect(codes.size).toBe(5000);
    const firstSymbols = new Set([...codes].map((code) => code[0]));
    expect(firstSymbols.size).toBe(32);
  });

  it("leaves the prefix out when it is empty", () => {
    expect(discountCode(SECRET, "c", "f", "")).toMatch(new RegExp(`^${CROCKFORD_GROUP}-`));
  });

  it("refuses an empty secret", () => {
    expect(() => discountCode("", "c", "f", "X")).toThrow(/secret/);
  });
});

describe("buildDiscountOffer", () => {
  const settings = { codePrefix: "LOYAL", percent: 15, validFor: Duration.fromISO("P30D") };

  it("counts validity from the send time on the customer's calendar", () => {
    // 23:30 UTC on 31 March is already 1 April in Berlin (summer time, +02:00).
    const offer = buildDiscountOffer({
      settings,
      secret: SECRET,
      customerId: "cus_1",
      followUpId: "fu-1",
      now: DateTime.fromISO("2026-03-31T23:30:00Z"),
      timezone: "Europe/Berlin",
    });
    expect(offer).toEqual({
      code: "LOYAL-DJGV-ZN59-K4P3",
      percent: 15,
      validUntil: "2026-05-01",
    });
  });

  it("uses calendar months for P1M", () => {
    const offer = buildDiscountOffer({
      settings: { ...settings, validFor: Duration.fromISO("P1M") },
      secret: SECRET,
      customerId: "cus_1",
      followUpId: "fu-1",
      now: DateTime.fromISO("2026-01-31T12:00:00Z"),
      timezone: "Europe/London",
    });
    expect(offer.validUntil).toBe("2026-02-28");
  });
});

describe("codes as tills type them", () => {
  it("match ignoring case, hyphens and spaces", () => {
    expect(normalizeCode("thanks-7kq2-m9xd-4tbw")).toBe("THANKS7KQ2M9XD4TBW");
    expect(normalizeCode(" THANKS 7KQ2M9XD-4TBW ")).toBe("THANKS7KQ2M9XD4TBW");
  });

  it("expire at the end of their last day in the customer's zone", () => {
    expect(new Date(codeExpiresAt("2027-03-28", "Europe/London")).toISOString()).toBe(
      "2027-03-28T22:59:59.999Z",
    );
    expect(new Date(codeExpiresAt("2027-01-10", "America/New_York")).toISOString()).toBe(
      "2027-01-11T04:59:59.999Z",
    );
  });

  it("take a rule's own percent, validity and prefix over the defaults", () => {
    const rules = rulesFrom(yaml`
      version: 1
      defaults: { timezone: Europe/London, currency: GBP, discount: { percent: 10, validFor: P30D } }
      rules:
        - id: vip
          discount: { percent: 25, codePrefix: VIP }
          steps: [{ kind: discount, channel: email, template: loyalty-discount, delay: P1D }]
        - id: plain
          steps: [{ kind: discount, channel: email, template: loyalty-discount, delay: P2D }]
    `);
    expect(
      rules.rules.map((rule) => [
        rule.id,
        rule.discount?.percent,
        rule.discount?.codePrefix,
        rule.discount?.validFor.toISO(),
      ]),
    ).toEqual([
      ["vip", 25, "VIP", "P30D"],
      ["plain", undefined, undefined, undefined],
    ]);
    expect(rules.attribution.window.toISO()).toBe("P30D");
  });

  it("count a redemption once: the same order asking again adds nothing", () => {
    const code = { code: "X", status: "redeemed", percent: 10, validUntil: "2027-01-01" } as const;
    expect(redemptionLabel({ status: "redeemed", code, now: true })).toBe("redeemed");
    expect(redemptionLabel({ status: "redeemed", code, now: false })).toBe(undefined);
    expect(redemptionLabel({ status: "taken", code })).toBe("taken");
    expect(redemptionLabel({ status: "unknown" })).toBe("unknown");
  });
});
