import { describe, expect, it } from "vitest";
import { judgeReply } from "../../src/reports/unhappy-replies.js";
import { reportModelOf } from "../support/report-model.js";

/** [reply, expected why (null: not unhappy)] */
const CASES: readonly (readonly [string, string | null])[] = [
  // Scores out of 10.
  ["2", "score 2 of 10"],
  ["5", "score 5 of 10"],
  ["6", null],
  ["10!", null],
  ["0", "score 0 of 10"],
  ["2/10", "score 2 of 10"],
  ["3 / 10 – meh", "score 3 of 10"],
  ["3 of 10", "score 3 of 10"],
  ["I'd say 4 out of 10, because the lid was loose", "score 4 of 10"],
  ["2,5/10", "score 2.5 of 10"],
  ["8/10 would buy again", null],
  ["2 von 10 Punkten", "score 2 of 10"],
  ["Rating: 3", "score 3 of 10"],
  ["I'd give it a 3", "score 3 of 10"],
  ["3 - meh", "score 3 of 10"],
  ["7. Fine overall", null],
  // Scores out of 5.
  ["2/5", "score 2 of 5"],
  ["3/5", null],
  ["1 star", "score 1 of 5"],
  ["one star, sadly", "score 1 of 5"],
  ["5 stars!", null],
  ["zwei Sterne", "score 2 of 5"],
  ["2 of 5 stars", "score 2 of 5"],
  ["★★", "score 2 of 5"],
  ["★★☆☆☆", "score 2 of 5"],
  ["⭐️⭐️⭐️⭐️⭐️", null],
  // Numbers that are not scores.
  ["2 days late but otherwise fine", null],
  ["3 of 5 items were in the box, all good", null],
  ["Delivered on 3/5/2026, thanks", null],
  ["Ordered 12 cups, love them", null],
  // English words of complaint.
  ["It arrived broken", "mentions “broken”"],
  ["The zipper is BROKEN!!", "mentions “BROKEN”"],
  ["Doesn’t work at all", "mentions “Doesn't work”"],
  ["the charger is not working", "mentions “is not working”"],
  ["I want to return it", "mentions “return”"],
  ["How do I get a refund?", "mentions “refund”"],
  ["Very disappointed with the quality", "mentions “disappointed”"],
  ["Terrible service", "mentions “Terrible”"],
  ["I have never been so disappointed", "mentions “disappointed”"],
  ["Not happy with it", "mentions “Not happy”"],
  ["Never again.", "mentions “Never again”"],
  ["Fine, but the box was damaged", "mentions “damaged”"],
  ["No problems with delivery, but the lid is broken", "mentions “broken”"],
  ["I have no idea why it's broken", "mentions “broken”"],
  ["problem not solved", "mentions “problem”"],
  // German words of complaint.
  ["Leider kaputt angekommen", "mentions “kaputt”"],
  ["Funktioniert leider nicht", "mentions “Funktioniert leider nicht”"],
  ["Das Gerät ist defekt", "mentions “defekt”"],
  ["Die Ware ist beschädigt angekommen", "mentions “beschädigt”"],
  ["Ich möchte das zurückgeben", "mentions “zurückgeben”"],
  ["Wie läuft die Rückgabe?", "mentions “Rückgabe”"],
  ["Sehr enttäuscht", "mentions “enttäuscht”"],
  ["Schlechte Qualität", "mentions “Schlechte”"],
  ["Ich habe ein Problem mit der Größe", "mentions “Problem”"],
  ["Ich gebe es zurück", "mentions “gebe es zurück”"],
  ["ÜBERHAUPT NICHT ZUFRIEDEN", "mentions “NICHT ZUFRIEDEN”"],
  // Negations and look-alikes that are fine.
  ["No problem at all, thanks!", null],
  ["not bad", null],
  ["Not too bad actually", null],
  ["kein Problem", null],
  ["Keine Probleme, alles super", null],
  ["Gar nicht schlecht", null],
  ["Nichts kaputt, danke", null],
  ["Es fehlt nichts", null],
  ["nothing to complain about", null],
  ["Can't complain!", null],
  ["Never had any issues", null],
  ["None of the items were broken", null],
  ["The problem was solved quickly, thank you", null],
  ["Alles problemlos", null],
  ["Passt perfekt ins Bad", null],
  ["I will return for more!", null],
  ["Love it, 10/10", null],
  ["Thanks, all good", null],
  ["", null],
  // Both cues at once.
  ["1/10, broken on arrival", "score 1 of 10; mentions “broken”"],
];

describe("judgeReply", () => {
  it.each(CASES)("%j → %j", (reply, why) => {
    expect(judgeReply(reply)).toEqual({ unhappy: why !== null, why });
  });

  it("ignores the quoted check-in below an email reply", () => {
    const reply =
      "All fine, thanks!\n\nOn Tue, 17 Nov 2026 at 14:05, Corner Shop <hello@shop.example> wrote:\n> Any problem with your order? Reply with a score from 1 to 10.";
    expect(judgeReply(reply)).toEqual({ unhappy: false, why: null });
    expect(judgeReply("> Any problem?\nKaputt.")).toEqual({
      unhappy: true,
      why: "mentions “Kaputt”",
    });
  });

  it("judges a very long reply quickly", () => {
    const started = performance.now();
    expect(judgeReply("not bad ".repeat(50_000)).unhappy).toBe(false);
    expect(judgeReply(`${"fine ".repeat(100)}broken`).why).toBe("mentions “broken”");
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it("has a table of at least 30 cases", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
  });
});

describe("the report's excerpt of a long unhappy reply", () => {
  it("is cut between whole characters, never in half an emoji", () => {
    // The excerpt keeps 239 UTF-16 units and "…": the emoji takes units 239 and 240.
    const text = `${"x".repeat(238)}🎉 and it arrived broken`;
    const model = reportModelOf(
      {},
      {
        replies: [
          {
            receivedAt: Date.parse("2026-11-17T10:00:00Z"),
            text,
            orderId: null,
            customerName: null,
          },
        ],
      },
    );
    expect(model.unhappyReplies.map((reply) => reply.text)).toEqual([`${"x".repeat(238)}…`]);
  });
});
