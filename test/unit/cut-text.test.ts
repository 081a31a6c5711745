import { describe, expect, it } from "vitest";
import { cutText } from "../../src/domain/cut-text.js";
import { UNPAIRED_SURROGATE } from "../../src/domain/unsafe-text.js";

describe("cutText", () => {
  it.each([
    ["fits", "abc", 3, "abc"],
    ["plain letters", "abcdef", 4, "abcd"],
    ["an emoji (a surrogate pair) across the cut", "ab🎉cd", 3, "ab"],
    ["an emoji that ends at the cut", "ab🎉cd", 4, "ab🎉"],
    ["a letter and its combining accent", "cafe\u0301s", 4, "caf"],
    ["a letter and its combining accent, kept whole", "cafe\u0301s", 5, "cafe\u0301"],
    ["a flag (two regional indicators)", "go 🇩🇪 now", 5, "go "],
    ["an emoji with a skin tone", "hi 👍🏽", 5, "hi "],
    ["a family (a ZWJ sequence)", "a👨‍👩‍👧b", 6, "a"],
    ["a CRLF", "ab\r\ncd", 3, "ab"],
    ["nothing", "🎉", 1, ""],
    ["zero", "abc", 0, ""],
  ])("%s", (_what, text, maxLength, cut) => {
    expect(cutText(text, maxLength)).toBe(cut);
  });

  it("cuts a character longer than 64 units (a letter under hundreds of accents) between code points", () => {
    const heap = `a${"\u0301".repeat(300)}`;
    expect(cutText(heap, 100)).toBe(heap.slice(0, 100));
    const emojiHeap = `a${"\u0301".repeat(98)}🎉${"\u0301".repeat(10)}`;
    expect(cutText(emojiHeap, 100)).toBe(emojiHeap.slice(0, 99));
  });

  it("pairs a long run of flags from the run's start, however far before the cut it begins", () => {
    // 40 flags (160 units), then a cut inside the 40th: a window that began inside the run at an
    // odd flag would pair its indicators the other way.
    const flags = `x${"🇩🇪".repeat(40)}`;
    expect(cutText(flags, 159)).toBe(`x${"🇩🇪".repeat(39)}`);
    expect(cutText(`x${flags}`, 160)).toBe(`xx${"🇩🇪".repeat(39)}`);
  });

  it("never leaves half a character, wherever the cut falls", () => {
    const text = "Re: 🎉 Ünïcödé 👨‍👩‍👧 🇩🇪 ok 👍🏽 e\u0301 漢字 𝒳 end";
    for (let at = 0; at <= text.length; at++) {
      const cut = cutText(text, at);
      expect(cut.length).toBeLessThanOrEqual(at);
      expect(text.startsWith(cut)).toBe(true);
      expect(UNPAIRED_SURROGATE.test(cut)).toBe(false);
    }
  });
});
