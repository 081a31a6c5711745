import { describe, expect, it } from "vitest";
import { alertEmail } from "../../src/reports/owner-alert-email.js";

const owner = { email: "maria@shop.example", name: "Maria", timezone: "Europe/London" };
const reply = {
  customerId: "cus-1",
  orderId: "ord-1",
  items: [{ quantity: 1, name: "Television" }],
  purchasedAt: "2026-11-20T10:00:00Z",
  channel: "sms",
  receivedAt: Date.UTC(2026, 11, 7, 9),
  why: "says it broke",
  text: "It broke",
  replyId: "evt-1/check-in/1",
  timelineUrl: null,
};
/** What a subject line must not carry: line breaks and other controls, bidi overrides. */
const UNSAFE = /[\p{Cc}\u202a-\u202e\u2066-\u2069]/u;

describe("an owner's alert email", () => {
  it("writes a customer's name into the subject as into the text: no controls or bidi overrides", () => {
    // Event fields may hold them (the contract trims, but keeps what is inside): a name that
    // reverses the rest of the subject ("…(order 1-dro)") or starts a new header line.
    const alert = alertEmail(
      owner,
      "Corner\u2066 Shop",
      [{ ...reply, firstName: "Ana\u202e\r\nBcc: someone@else.example\u0007" }],
      "alert-1",
    );
    expect(alert.subject).not.toMatch(UNSAFE);
    expect(alert.subject).toBe(
      "Corner Shop: an unhappy reply from Ana Bcc: someone@else.example (order ord-1)",
    );
    for (const unsafe of ["\u202e", "\u2066", "\u0007", "\r"])
      expect(alert.text).not.toContain(unsafe);
  });
});
