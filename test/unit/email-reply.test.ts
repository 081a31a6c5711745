import { describe, expect, it } from "vitest";
import { isAutomaticReply, replyBody, subjectAsksToStop } from "../../src/domain/email-reply.js";

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
    [
      "Perfetto.\nIl giorno lun 1 dic 2026, Shop <hello@shop.example> ha scritto:\nGrazie",
      "Perfetto.",
    ],
    ["Prima.\nOp ma 1 dec. 2026 om 10:00 schreef Shop <hello@shop.example>:\nBedankt", "Prima."],
    // Ten underscores are a separator (a quoted footer below it is not the customer's).
    ["OK then\n__________\nRather not get offers like this? Unsubscribe", "OK then"],
    // Old Mac line ends (a bare CR) split lines as well.
    [
      "Fine.\rOn Mon, 1 Dec 2026 at 10:00, Shop <hello@shop.example> wrote:\r> Unsubscribe",
      "Fine.",
    ],
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
    [{ precedence: "auto_reply" }, true],
    [{ precedence: "list" }, true],
    [{ precedence: " Junk " }, true],
    [{ precedence: "first-class" }, false],
    [{ autoSubmitted: " No " }, false],
    [{ autoSubmitted: "auto-generated" }, true],
    [{ subject: "Out of Office: Re: Thank you" }, true],
    [{ subject: "Automatic reply: your order" }, true],
    [{ subject: "Abwesenheitsnotiz" }, true],
    [{ subject: "Re: Thank you for your order" }, false],
    [{ subject: "Re: the office chair you sold me is broken" }, false],
  ])("%j → %s", (mail, automatic) => {
    expect(isAutomaticReply(mail)).toBe(automatic);
  });
});

describe("subjectAsksToStop", () => {
  it.each([
    ["Unsubscribe", true],
    ["Please remove me from your mailing list", true],
    ["Keine E-Mails mehr", true],
    // Answers and forwards of ours: the words after the prefix are the shop's.
    ["Re: Unsubscribe", false],
    ["AW: Keine E-Mails mehr", false],
    ["Fwd: Please remove me from your mailing list", false],
    ["RE[2]: Unsubscribe", false],
    // A subject that asks for nothing to end.
    ["Question about my order", false],
    ["I don't want to unsubscribe", false],
    [undefined, false],
  ] as const)("%j → %s", (subject, expected) => {
    expect(subjectAsksToStop(subject)).toBe(expected);
  });
});
