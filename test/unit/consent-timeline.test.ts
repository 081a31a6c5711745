import { describe, expect, it } from "vitest";
import { ConsentTimeline, consentFor } from "../../src/domain/consent-timeline.js";

/** What simulate replays of consent: per channel, the latest purchase by `at` that stated one. */

const purchase = (customerId: string, occurredAt: string, consent?: Record<string, boolean>) => ({
  occurredAt,
  customer: { id: customerId, ...(consent && { consent }) },
});

const JAN_YES = { given: true, at: Date.parse("2026-01-01T10:00:00Z") };
const MAR_NO = { given: false, at: Date.parse("2026-03-01T10:00:00Z") };

describe("ConsentTimeline", () => {
  const timeline = new ConsentTimeline();
  // Noted in arrival order, which is not purchase order.
  timeline.note(purchase("c1", "2026-03-01T10:00:00Z", { email: false }) as never);
  timeline.note(purchase("c1", "2026-01-01T10:00:00Z", { email: true, sms: true }) as never);
  timeline.note(purchase("c1", "2026-02-01T10:00:00Z") as never);
  timeline.note(purchase("c2", "2026-01-01T10:00:00Z", { sms: false }) as never);

  it.each([
    ["before any purchase", "2025-12-31T00:00:00Z", {}],
    ["after the first", "2026-01-15T00:00:00Z", { email: JAN_YES, sms: JAN_YES }],
    ["after one that stated nothing", "2026-02-15T00:00:00Z", { email: JAN_YES, sms: JAN_YES }],
    ["after the email box was cleared", "2026-03-01T10:00:00Z", { email: MAR_NO, sms: JAN_YES }],
  ])("%s", (_, at, expected) => {
    expect(timeline.at("c1", Date.parse(at))).toEqual(expected);
  });

  it("keeps customers apart", () => {
    expect(timeline.at("c2", Date.parse("2026-06-01T00:00:00Z"))).toEqual({
      sms: { given: false, at: Date.parse("2026-01-01T10:00:00Z") },
    });
    expect(timeline.at("nobody", Date.parse("2026-06-01T00:00:00Z"))).toEqual({});
  });
});

describe("ConsentTimeline: purchases made at the same instant", () => {
  it("takes a withdrawal noted after a consent", () => {
    const timeline = new ConsentTimeline();
    timeline.note(purchase("c3", "2026-04-01T10:00:00Z", { email: true }) as never);
    timeline.note(purchase("c3", "2026-04-01T10:00:00Z", { email: false }) as never);
    expect(timeline.at("c3", Date.parse("2026-04-02T00:00:00Z"))).toEqual({
      email: { given: false, at: Date.parse("2026-04-01T10:00:00Z") },
    });
  });
});

describe("ConsentTimeline: a withdrawal and a consent at the same instant", () => {
  it("takes the withdrawal, whichever is noted last: nothing shows the consent came later", () => {
    const timeline = new ConsentTimeline();
    timeline.note(purchase("c4", "2026-04-01T00:00:00Z", { sms: false }) as never);
    timeline.note(purchase("c4", "2026-04-01T00:00:00Z", { sms: true }) as never);
    expect(timeline.at("c4", Date.parse("2026-04-02T00:00:00Z"))).toEqual({
      sms: { given: false, at: Date.parse("2026-04-01T00:00:00Z") },
    });
  });
});

describe("consentFor", () => {
  const own = (occurredAt: string, email?: boolean) => ({
    occurredAt,
    customer: { ...(email !== undefined && { consent: { email } }) },
  });
  it.each([
    ["no stated consent: the purchase's own", own("2026-02-01T10:00:00Z", true), {}, true],
    ["no stated consent, none of its own", own("2026-02-01T10:00:00Z"), {}, undefined],
    ["stated later than the purchase", own("2026-02-01T10:00:00Z", true), { email: MAR_NO }, false],
    [
      "stated earlier: the purchase's own",
      own("2026-04-01T10:00:00Z", true),
      { email: MAR_NO },
      true,
    ],
    ["stated earlier, none of its own", own("2026-04-01T10:00:00Z"), { email: MAR_NO }, false],
    // Not later: another purchase at the same instant, taken in after it, stated it.
    [
      "stated at the purchase's instant",
      own("2026-03-01T10:00:00Z", true),
      { email: MAR_NO },
      false,
    ],
    // Nor earlier: the purchase's own withdrawal at the instant of a stated consent stands.
    [
      "withdrawn by the purchase at the instant consent was stated",
      own("2026-01-01T10:00:00Z", false),
      { email: JAN_YES },
      false,
    ],
    ["no purchase (a timeline's customer)", undefined, { email: JAN_YES }, true],
  ] as const)("%s", (_, purchase, stated, expected) => {
    expect(consentFor(purchase, "email", stated)).toBe(expected);
  });
});
