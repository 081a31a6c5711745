import { afterEach, describe, expect, it, vi } from "vitest";
import { cutText, writesCharacterAsSeveral } from "../../src/domain/cut-text.js";
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

  describe("between two characters that join nothing", () => {
    afterEach(() => {
      vi.restoreAllMocks();
    });

    // An SMS over the cap cuts every name of the purchase (500 items of 300 characters) some 20
    // times within one render's 250 ms: segmenting costs microseconds a cut, a slice nothing.
    const AT_ONCE: Readonly<Record<string, { text: string; maxLength: number; cut: string }>> = {
      Cyrillic: { text: "Диван угловой с подушками", maxLength: 9, cut: "Диван угл" },
      Greek: { text: "Καναπές γωνιακός", maxLength: 5, cut: "Καναπ" },
      "Han and kana": { text: "北欧風ソファ三人掛け", maxLength: 4, cut: "北欧風ソ" },
      Hebrew: { text: "ספה פינתית גדולה", maxLength: 6, cut: "ספה פי" },
      "Arabic letters": { text: "أريكة زاوية كبيرة", maxLength: 3, cut: "أري" },
      emoji: { text: "🎉🎁🎉🎁 party", maxLength: 4, cut: "🎉🎁" },
      "emoji, the cut inside one": { text: "🎉🎁🎉🎁 party", maxLength: 5, cut: "🎉🎁" },
      "Han beyond the BMP": { text: "𠀀𠀁𠀂", maxLength: 4, cut: "𠀀𠀁" },
    };

    it("cuts letters of other scripts than Latin, and emoji, at once, without segmenting", () => {
      const segment = vi.spyOn(Intl.Segmenter.prototype, "segment");
      for (const [what, { text, maxLength, cut }] of Object.entries(AT_ONCE)) {
        expect(cutText(text, maxLength), what).toBe(cut);
        expect(segment.mock.calls.length, what).toBe(0);
      }
    });

    it("is where the Unicode rules put a boundary, for every code point cut beside at once", () => {
      // Every 13th code point c, beside a neighbour of each class a grapheme rule joins (Hangul
      // jamo, a regional indicator, an emoji, a letter): where a cut between c and a letter is made
      // at once, c must stand alone as a reader sees it, after and before each of them.
      const segments = new Intl.Segmenter(undefined, { granularity: "grapheme" });
      const count = (text: string) => [...segments.segment(text)].length;
      const segment = vi.spyOn(Intl.Segmenter.prototype, "segment");
      const wrong: string[] = [];
      let atOnce = 0;
      for (let code = 0; code <= 0x10ffff; code += 13) {
        if (code >= 0xd800 && code <= 0xdfff) continue;
        const c = String.fromCodePoint(code);
        segment.mockClear();
        cutText(`a${c}a`, 1);
        cutText(`a${c}a`, 1 + c.length);
        if (segment.mock.calls.length > 0) continue;
        atOnce++;
        const neighbours = ["a", "\u1100", "\u1161", "\u11a8", "\uac00", "🇩", "😀", "\u0915"];
        const text = `${neighbours.map((n) => `${n}${c}`).join("")}a`;
        if (count(text) !== 2 * neighbours.length + 1) wrong.push(code.toString(16));
      }
      segment.mockRestore();
      expect(wrong).toEqual([]);
      // Most of them: letters of every script, digits, punctuation, symbols, emoji.
      expect(atOnce).toBeGreaterThan(5_000);
    });
  });
});

describe("writesCharacterAsSeveral", () => {
  const segments = new Intl.Segmenter(undefined, { granularity: "grapheme" });
  /** What it must say: whether a cluster of the text holds more than one code point. */
  const expected = (text: string) =>
    [...segments.segment(text)].some(({ segment }) => [...segment].length > 1);

  it("agrees with the Unicode rules for every 307th code point beside a neighbour of each class a rule joins", () => {
    // Hangul jamo (L, V, T) and syllables (LV, LVT), CR and LF, a regional indicator, an emoji,
    // a ZWJ, a combining accent, a Devanagari letter: before and after each code point.
    const neighbours = [
      "a",
      "\u1100",
      "\u1161",
      "\u11a8",
      "\uac00",
      "\uac01",
      "\r",
      "\n",
      "🇩",
      "😀",
      "\u200d",
      "\u0301",
      "\u0915",
    ];
    const wrong: string[] = [];
    for (let code = 0; code <= 0x10ffff; code += 307) {
      if (code >= 0xd800 && code <= 0xdfff) continue;
      const c = String.fromCodePoint(code);
      const texts = [`${c}${c}${c}`, ...neighbours.flatMap((n) => [`x${n}${c}x`, `x${c}${n}x`])];
      for (const text of texts)
        if (writesCharacterAsSeveral(text) !== expected(text))
          wrong.push(`${code.toString(16)} ${JSON.stringify(text)}`);
    }
    expect(wrong.slice(0, 20)).toEqual([]);
  });

  it("says so of CR LF, Hangul jamo joined to a syllable and a syllable with a mark, far into a long text", () => {
    const korean = "가나".repeat(50_000);
    for (const [text, several] of [
      [korean, false],
      [`${korean}\r\n`, true],
      [`${korean}\u11a8`, true],
      [`\u1100${korean}`, true],
      [`${korean}\u0301`, true],
      [`${"\r".repeat(100_000)}a`, false],
      [`${"\r".repeat(100_000)}\n`, true],
    ] as const)
      expect([text.slice(-3), writesCharacterAsSeveral(text)]).toEqual([text.slice(-3), several]);
  });

  it("passes over Korean text and lone CRs without segmenting them (a megabyte of Korean took seconds)", () => {
    const segment = vi.spyOn(Intl.Segmenter.prototype, "segment");
    try {
      for (const text of [
        "가나".repeat(50_000),
        `a${"\r".repeat(100_000)}b`,
        "ab".repeat(50_000),
      ]) {
        segment.mockClear();
        expect(writesCharacterAsSeveral(text)).toBe(false);
        const segmented = segment.mock.calls.reduce((sum, [part]) => sum + String(part).length, 0);
        expect(segmented).toBe(0);
      }
    } finally {
      segment.mockRestore();
    }
  });
});
