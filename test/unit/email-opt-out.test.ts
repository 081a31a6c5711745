import { describe, expect, it } from "vitest";
import { emailOptOutRequest, smsKeyword } from "../../src/domain/sms-keywords.js";

/** Email replies whose words ask for no more emails (CAN-SPAM: honoured as the link is). */
const OPT_OUTS: readonly string[] = [
  "unsubscribe",
  "Unsubscribe me please",
  "UNSUBSCRIBE",
  "Please stop emailing me",
  "please stop e-mailing me.",
  "Stop sending me emails",
  "Please stop the emails",
  "No more emails please",
  "Don't email me again",
  "Remove me from your list",
  "Hi,\n\nplease remove me from your mailing list.\n\nThanks, Ana",
  "Please remove my email address",
  "Hello.\nUnsubscribe.\n\nSent from my iPhone",
  "Unsubscribe me from your newsletter",
  "I want to opt out",
  "STOP",
  // The whole-message keywords of other languages, as in a text.
  "Désabonner",
  "darme de baja",
  "uitschrijven",
  // German.
  "Keine E-Mails mehr, bitte",
  "Bitte vom Newsletter abmelden",
  "Bitte melden Sie mich ab",
  "Mailen Sie mir bitte nicht mehr",
  // Disguised as in a text.
  "ＵＮＳＵＢＳＣＲＩＢＥ",
];

/** Replies that ask nothing to end: filed for support, the customer stays subscribed. */
const REPLIES: readonly string[] = [
  "I don't want to unsubscribe",
  "I do not want to unsubscribe, I love the offers",
  "Please don't stop the emails, they are useful",
  "I can't stop using this pan",
  "The pan arrived dented, 2/10",
  "Will you stop by the shop?",
  "Thanks, love it! When does the next sale end?",
  "Cancel my order please",
  "The email with the receipt never came",
  "Can you send me the manual by email?",
  "",
];

describe("emailOptOutRequest", () => {
  it.each(OPT_OUTS)("reads %j as a request for no more emails", (text) => {
    expect(emailOptOutRequest(text)).toBe(true);
  });

  it.each(REPLIES)("reads %j as a reply", (text) => {
    expect(emailOptOutRequest(text)).toBe(false);
  });

  it("does not read the phrases naming emails in a text", () => {
    expect(smsKeyword("no more emails")).toBeUndefined();
    expect(smsKeyword("Love the TV, but remove my email address")).toBeUndefined();
  });
});
