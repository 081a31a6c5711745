import { describe, expect, it } from "vitest";
import { reasonWords } from "../../src/reports/reason-words.js";

const CASES: readonly (readonly [string, string | RegExp])[] = [
  ["no-contact", "there was no email address or phone number to send to"],
  ["no-consent", "the customer had not agreed to receive these messages"],
  ["opted-out", "the customer had unsubscribed from this channel"],
  ["past-due", /too late|no longer make sense/],
  ["no-send-window", /tell your operator/],
  ["rule-removed", /taken out of the rules/],
  [
    "no-longer-matches",
    "the rules were changed after it was planned, and no longer apply to this order",
  ],
  [
    "superseded",
    "another follow-up of the same kind was planned for this order (one of each kind per order)",
  ],
  ["capped", /frequency limit/],
  ["channel-unavailable", /no working account when it was due: tell your operator/],
  ["call-answered", "the customer answered the call it was standing in for"],
  ["call-cancelled", "the call it was standing in for was cancelled"],
  ["call-coalesced", /joined to a thank-you for an earlier purchase/],
  ["call-superseded", /gave way to another follow-up of the same kind/],
  ["call-outcome-unknown", /never arrived: tell your operator/],
  ["no-call", "the call it was standing in for was no longer on record"],
  ["permanent no-script", "the call had no script to read: tell your operator"],
  [
    "transient stalled",
    "the workers sending it kept stopping before they were done (tell your operator) and we gave up",
  ],
  [
    "transient render-time",
    "filling in its template kept taking too long (tell your operator) and we gave up",
  ],
  ["event-missing", /expired/],
  ["unreadable-purchase", /stored details could not be read: tell your operator/],
  ["refunded", "the order was refunded"],
  ["permanent 550", "the mail server refused the address"],
  ["permanent 553", "the mail server refused the address"],
  [
    "permanent 552",
    "the mail server refused the message for good (552: most often its size, a mailbox over its limit, or the server's policy)",
  ],
  ["permanent 21211", "the phone number is not valid"],
  ["permanent 21614", "the number cannot receive SMS (landline?)"],
  ["permanent 21610", "the customer replied STOP earlier"],
  ["misconfigured 20003", "the SMS account settings are wrong: tell your operator"],
  ["misconfigured EAUTH", "the email account settings are wrong: tell your operator"],
  ["misconfigured 535", "the email account settings are wrong: tell your operator"],
  ["misconfigured 401", "the SMS account settings are wrong: tell your operator"],
  ["misconfigured EACCES", /settings are wrong \(code EACCES\): tell your operator/],
  ["permanent render", /template could not be filled in: tell your operator/],
  ["transient 451", "the mail server kept putting the message off and we gave up"],
  ["transient ECONNECTION", "the connection to the mail server kept breaking and we gave up"],
  ["transient 20429", "the SMS provider kept asking us to slow down and we gave up"],
  ["transient 503", /kept having trouble and we gave up/],
  [
    "transient 552",
    "the recipient's mailbox stayed full (or the mail server took no more recipients) and we gave up",
  ],
  ["transient EWHATEVER", "sending kept failing (code EWHATEVER) and we gave up"],
  ["permanent 400", /the SMS provider refused the message \(code 400\)/],
  ["permanent EFOO", /could not be sent \(code EFOO\)/],
  ["undelivered 30006", "the number cannot receive SMS (landline?)"],
  ["undelivered 30999", /could not deliver it \(code 30999\)/],
  ["undelivered canceled", "the text was cancelled at the SMS provider before it went out"],
  [
    "undelivered partially_delivered",
    "only part of the text reached the phone (a long text goes in parts)",
  ],
  ["something-new", "not sent, for a reason without a description yet (code “something-new”)"],
  ["  capped  ", /frequency limit/],
];

describe("reasonWords", () => {
  it.each(CASES)("%s", (code, expected) => {
    const words = reasonWords(code);
    if (typeof expected === "string") expect(words).toBe(expected);
    else expect(words).toMatch(expected);
  });

  it("always contains an unknown code so the operator can look it up", () => {
    for (const code of ["permanent X1", "transient Y2", "misconfigured Z3", "W4"]) {
      expect(reasonWords(code)).toContain(code.split(" ").at(-1));
    }
  });
});
