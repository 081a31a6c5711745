import { describe, expect, it } from "vitest";
import { isAutomaticReply, replyBody } from "../../src/domain/email-reply.js";

describe("replyBody", () => {
  it.each([
    [
      "It broke after a week.\n\nOn Mon, 1 Dec 2026 at 10:00, Shop <hello@shop.example> wrote:\n> Thank you for your order",
      "It broke after a week.",
    ],
    [
      "Alles gut!\r\n\r\nAm 01.12.2026 um 10:00 schrieb Shop <hello@shop.example>:\r\n> Danke",
      "Alles gut!",
    ],
    ["Fine.\n-----Original Message-----\nFrom: Shop\nThanks", "Fine."],
    ["Great TV\n________________________________\nFrom: Shop <hello@shop.example>", "Great TV"],
    ["> quoted first\nmy answer\n> more quote", "my answer"],
    ["  line one  \n\n\n\nline two", "line one\n\nline two"],
  ])("%j → %j", (text, body) => {
    expect(replyBody(text)).toBe(body);
  });
});

describe("isAutomaticReply", () => {
  it.each([
    [{ autoSubmitted: "auto-replied" }, true],
    [{ autoSubmitted: "no", subject: "Re: Thank you" }, false],
    [{ precedence: "bulk" }, true],
    [{ subject: "Out of Office: Re: Thank you" }, true],
    [{ subject: "Automatic reply: your order" }, true],
    [{ subject: "Abwesenheitsnotiz" }, true],
    [{ subject: "Re: Thank you for your order" }, false],
    [{ subject: "Re: the office chair you sold me is broken" }, false],
  ])("%j → %s", (mail, automatic) => {
    expect(isAutomaticReply(mail)).toBe(automatic);
  });
});
