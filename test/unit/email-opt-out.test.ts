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
  "Hello.\nUnsubscribe.\n\nSent from my iPhone",
  "Unsubscribe me from your newsletter",
  "I want to opt out",
  "I'd like to unsubscribe from these emails",
  "Please unsubscribe me, thanks",
  "Take me off your mailing list",
  "Stop sending me newsletters",
  "Schicken Sie mir bitte keine E-Mails mehr",
  "Bitte vom Newsletter abmelden, danke",
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
  // Complaints and questions a text's looser reading took for opt-outs.
  "Ich habe keine Mail mehr bekommen, wo ist meine Rechnung?",
  "No more emails came after the order confirmation, where is my invoice?",
  "Stop! The TV arrived broken.",
  "Please stop sending me the wrong size, this is the second time.",
  "Remove my address from the invoice please.",
  "My email address changed, please remove my email address and use new@example.com",
  "Please cancel it.",
  "Cancel the second TV please",
  "Stop the delivery please, I won't be home",
  "Please tell him to stop calling me",
  "Take me off hold next time",
  "Stop order 12345",
  "STOP - wrong address",
  "Cancel",
  "End date of warranty?",
  "Remove me from order #123",
  "Quit sending me the wrong sizes, the shoes are too small",
  // A quoted footer whose header the reply's reading did not know.
  "Super, merci !\n\nRather not get offers like this? Unsubscribe: https://shop.example/u/abc",
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
