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
    // Other clients and languages, and a header wrapped over two lines, quoting without ">".
    [
      "Super, merci !\n\nDe : Example Shop <hello@shop.example>\nUnsubscribe: https://x",
      "Super, merci !",
    ],
    ["Top.\nLe lun. 1 déc. 2026 à 10:00, Shop <hello@shop.example> a écrit :\nMerci", "Top."],
    [
      "Vale.\nEl lun, 1 dic 2026 a las 10:00, Shop (<hello@shop.example>) escribió:\nGracias",
      "Vale.",
    ],
    ["Bien.\n-----Mensaje original-----\nGracias", "Bien."],
    ["Goed.\nVan: Shop <hello@shop.example>\nBedankt", "Goed."],
    ["Bene.\nDa: Shop <hello@shop.example>\nGrazie", "Bene."],
    [
      "Love it.\n\nOn Mon, 1 Dec 2026 at 10:00, Example Shop\n<hello@shop.example> wrote:\n\nRather not get offers like this? Unsubscribe",
      "Love it.",
    ],
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
