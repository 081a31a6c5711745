import { describe, expect, it } from "vitest";
import { renderTimelineText } from "../../src/cli/operator-text.js";
import type { CustomerTimeline, TimelinePurchase } from "../../src/operations/timeline.js";

function purchase(i: number): TimelinePurchase {
  return {
    eventId: `evt-${i}`,
    orderId: `ord-${i}`,
    occurredAt: "2026-12-01T10:00:00Z",
    total: null,
    items: [],
    refunded: null,
    data: "none",
    steps: [],
  };
}

function timeline(listed: number, notListed?: number): CustomerTimeline {
  return {
    customer: {
      id: "cus-many",
      firstName: null,
      email: null,
      phone: null,
      timezone: "Europe/London",
      locale: null,
      consent: { email: null, sms: null, voice: null },
    },
    suppressions: { email: null, sms: null, voice: null },
    purchases: Array.from({ length: listed }, (_, i) => purchase(listed - i)),
    ...(notListed !== undefined && { purchasesNotListed: notListed }),
    audit: [],
  };
}

describe("followups customer's text", () => {
  it("says how many purchases past the latest 100 it leaves out, and how to see one", () => {
    const lines = renderTimelineText(timeline(100, 2)).split("\n");
    expect(lines).toContain(
      "The latest 100 purchases of 102: 2 older ones are not listed here. Show an older one by its order id: followups order ORDER_ID.",
    );
    expect(renderTimelineText(timeline(100, 1)).split("\n")).toContain(
      "The latest 100 purchases of 101: 1 older one is not listed here. Show an older one by its order id: followups order ORDER_ID.",
    );
    // Said before the purchases, as the console's timeline does.
    expect(lines.findIndex((line) => line.startsWith("The latest 100"))).toBeLessThan(
      lines.indexOf("Purchase evt-100, order ord-100, 2026-12-01T10:00:00Z, total not stored"),
    );
  });

  it("says nothing of the kind when every purchase is listed", () => {
    expect(renderTimelineText(timeline(3))).not.toContain("not listed");
  });
});
