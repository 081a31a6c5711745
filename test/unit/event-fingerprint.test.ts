import { hash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  eventFingerprint,
  eventFingerprints,
  eventJson,
  fingerprintMatches,
} from "../../src/domain/event-fingerprint.js";
import { type FollowUpEvent, parseEvent } from "../../src/domain/events.js";
import { purchaseInput } from "../support/fixtures.js";

function validated(input: Record<string, unknown>): FollowUpEvent {
  const parsed = parseEvent(input);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.event;
}

const at = (occurredAt: string) => validated(purchaseInput({ id: "evt-1", occurredAt }));

describe("an event's fingerprint", () => {
  it("is the same for one instant however it is written", () => {
    const spellings = [
      "2026-11-23T10:00:00Z",
      "2026-11-23T10:00:00.000Z",
      "2026-11-23T10:00:00+00:00",
      "2026-11-23T11:00:00+01:00",
      "2026-11-23T05:00:00.000-05:00",
    ];
    const fingerprints = new Set(spellings.map((text) => eventFingerprint(at(text))));
    expect(fingerprints.size).toBe(1);
  });

  it("is the same for one instant written with 1 to 9 digits of a second's fraction", () => {
    const half = eventFingerprint(at("2026-11-23T10:00:00.500Z"));
    for (const text of [
      "2026-11-23T10:00:00.5Z",
      "2026-11-23T10:00:00.50Z",
      "2026-11-23T10:00:00.500000Z",
      "2026-11-23T10:00:00.500000000Z",
      "2026-11-23T11:00:00.5+01:00",
      // Digits past the millisecond are not kept: the instant is read to the millisecond.
      "2026-11-23T10:00:00.500999999Z",
    ])
      expect(eventFingerprint(at(text)), text).toBe(half);
    expect(eventFingerprint(at("2026-11-23T10:00:00.501Z"))).not.toBe(half);
  });

  it("differs for another instant, even by a millisecond, and for other content", () => {
    const base = eventFingerprint(at("2026-11-23T10:00:00Z"));
    expect(eventFingerprint(at("2026-11-23T10:00:00.001Z"))).not.toBe(base);
    expect(eventFingerprint(at("2026-11-23T10:00:00+01:00"))).not.toBe(base);
    const otherCustomer = validated(
      purchaseInput({ id: "evt-1", occurredAt: "2026-11-23T10:00:00Z", customer: { id: "c-2" } }),
    );
    expect(eventFingerprint(otherCustomer)).not.toBe(base);
  });

  it("comes with the one earlier versions kept when the instant was not written as UTC with milliseconds", () => {
    // Written so, the event's JSON is what was hashed before: one fingerprint.
    expect(eventFingerprints(at("2026-11-23T10:00:00.000Z"))).toHaveLength(1);
    const event = at("2026-11-23T11:00:00+01:00");
    const [kept, earlier] = eventFingerprints(event);
    expect(kept).toBe(eventFingerprint(at("2026-11-23T10:00:00.000Z")));
    expect(earlier).toBeDefined();
    expect(earlier).not.toBe(kept);
    // The earlier one is of the event as written (its JSON keeps the offset given).
    expect(eventJson(event)).toContain('"occurredAt":"2026-11-23T11:00:00+01:00"');
    expect(fingerprintMatches(earlier ?? "", eventFingerprints(event))).toBe(true);
    // Key layout 4 and before kept 22 characters of the same hash.
    expect(fingerprintMatches(`${kept}ABCDEFGHIJK`, eventFingerprints(event))).toBe(true);
    expect(fingerprintMatches("AAAAAAAAAAA", eventFingerprints(event))).toBe(false);
  });
});

describe("an event in a currency whose minor unit changed (HUF, IQD, …)", () => {
  const forints = (amount: string) =>
    validated(
      purchaseInput({
        id: "evt-huf",
        occurredAt: "2026-11-23T10:00:00.000Z",
        currency: "HUF",
        items: [{ sku: "TV", name: "TV", category: "televisions", quantity: 1, unitPrice: amount }],
      }),
    );

  it("matches the fingerprint versions up to 6 December 2026 kept for it", () => {
    const event = forints("1300");
    if (event.type !== "purchase.completed") throw new Error("not a purchase");
    expect(event.total).toEqual({ minor: 130_000, currency: "HUF" });
    // As those versions read it (HUF without decimals) and hashed it.
    const former = {
      ...event,
      items: event.items.map((item) => ({ ...item, unitPrice: { minor: 1300, currency: "HUF" } })),
      total: { minor: 1300, currency: "HUF" },
    };
    const fingerprints = eventFingerprints(event);
    expect(fingerprints[0]).toBe(eventFingerprint(event));
    expect(fingerprints[0]).not.toBe(keptBefore(former));
    expect(fingerprintMatches(keptBefore(former), fingerprints)).toBe(true);
    // Another amount is another event.
    expect(fingerprintMatches(keptBefore(former), eventFingerprints(forints("1301")))).toBe(false);
    // 1299.50 HUF, which those versions refused, has no earlier fingerprint.
    expect(eventFingerprints(forints("1299.50"))).toHaveLength(1);
  });

  it("a refund's too", () => {
    const refund = validated({
      type: "purchase.refunded",
      id: "ref-iqd",
      occurredAt: "2026-11-23T10:00:00Z",
      orderId: "ord-1",
      amount: { amount: "5", currency: "IQD" },
    });
    if (refund.type !== "purchase.refunded") throw new Error("not a refund");
    expect(refund.amount).toEqual({ minor: 5000, currency: "IQD" });
    const former = keptBefore({ ...refund, amount: { minor: 5, currency: "IQD" } });
    expect(fingerprintMatches(former, eventFingerprints(refund))).toBe(true);
  });

  it("an amount a hundred times another is another event, whichever this version recorded", () => {
    // A publisher sends 130000 (the amount in fillér), then corrects it to 1300 under the same id.
    const [big, small] = [forints("130000"), forints("1300")];
    for (const [first, second] of [
      [big, small],
      [small, big],
    ] as const) {
      expect(fingerprintMatches(eventFingerprints(first)[0], eventFingerprints(second))).toBe(
        false,
      );
    }
    // Nor does a refund of 5 IQD match one of 5000 IQD.
    const refund = (amount: string) =>
      validated({
        type: "purchase.refunded",
        id: "ref-iqd",
        occurredAt: "2026-11-23T10:00:00Z",
        orderId: "ord-1",
        amount: { amount, currency: "IQD" },
      });
    expect(
      fingerprintMatches(eventFingerprints(refund("5"))[0], eventFingerprints(refund("5000"))),
    ).toBe(false);
    expect(
      fingerprintMatches(eventFingerprints(refund("5000"))[0], eventFingerprints(refund("5"))),
    ).toBe(false);
  });
});

/** The fingerprint versions up to 6 December 2026 kept: the hash of the event's JSON as read. */
function keptBefore(event: object): string {
  return hash("sha256", JSON.stringify(event), "base64url").slice(0, 11);
}
