import { describe, expect, it, vi } from "vitest";
import { describeProblems, parseEvent } from "../../src/domain/events.js";
import { item, purchaseInput } from "../support/fixtures.js";

/** JSON can write half a character (`"\ud800"`); UTF-8, and so Redis's scripts, cannot hold it. */
describe("an event with an unpaired UTF-16 surrogate", () => {
  it("is refused, naming where, in a value or a key at any depth", () => {
    const cases: [input: Record<string, unknown>, problem: string][] = [
      [
        purchaseInput({ customer: { id: "cus-\ud800" } }),
        "customer.id: the text holds half a character at character 5 (an unpaired UTF-16 surrogate, \\ud800), which UTF-8 cannot hold: send the character whole, or leave it out",
      ],
      [
        purchaseInput({
          items: [item("televisions", "899.00", { name: "TV\udfff" })],
        }),
        "items[0].name: the text holds half a character at character 3 (an unpaired UTF-16 surrogate, \\udfff)",
      ],
      [
        { ...purchaseInput({}), note: { "x\udc00": 1 } },
        "note.x\\udc00: the key holds half a character at character 2 (an unpaired UTF-16 surrogate, \\udc00)",
      ],
    ];
    for (const [input, problem] of cases) {
      const parsed = parseEvent(input);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) expect(describeProblems(parsed.problems)).toContain(problem);
    }
  });

  it("names its position in characters (code points) as a user counts them, not UTF-16 units", () => {
    const cases: [name: string, problem: string][] = [
      // Two emoji (four UTF-16 units) before it: the third character.
      [
        "😀😀\ud800",
        "customer.name: the text holds half a character at character 3 (an unpaired UTF-16 surrogate, \\ud800)",
      ],
      // A letter and its accent written apart, and a joined emoji (👍🏽, two code points): a reader
      // sees fewer characters before it than there are code points, and the message says how it
      // counted.
      [
        "Zoe\u0301 👍🏽\udc00",
        "customer.name: the text holds half a character at character 8 (counting each accent and each part of an emoji sequence as one) (an unpaired UTF-16 surrogate, \\udc00)",
      ],
    ];
    for (const [name, problem] of cases) {
      const parsed = parseEvent(purchaseInput({ customer: { id: "cus-1", name } }));
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) expect(describeProblems(parsed.problems)).toContain(problem);
    }
  });

  it("names the position in a long text without segmenting it whole (V8 walks one long text's characters in quadratic time)", () => {
    // 40,000 UTF-16 units (letters with their accents apart, letters and a CR LF, Hangul syllables)
    // in a field the contract does not bound, then half a character: segmented
    // whole, some seconds of CPU; a 4 MB body, hours.
    const segment = vi.spyOn(Intl.Segmenter.prototype, "segment");
    try {
      for (const [name, problem] of [
        [
          `${"e\u0301".repeat(20_000)}\ud800`,
          "note: the text holds half a character at character 40001 (counting each accent and each part of an emoji sequence as one) (an unpaired UTF-16 surrogate, \\ud800)",
        ],
        [
          `${"ab".repeat(20_000)}\r\n\ud800`,
          "note: the text holds half a character at character 40003 (counting each accent and each part of an emoji sequence as one) (an unpaired UTF-16 surrogate, \\ud800)",
        ],
        [
          `${"가나".repeat(20_000)}\ud800`,
          "note: the text holds half a character at character 40001 (an unpaired UTF-16 surrogate, \\ud800)",
        ],
      ] as const) {
        segment.mockClear();
        const parsed = parseEvent({ ...purchaseInput(), note: name });
        expect(parsed.ok).toBe(false);
        if (!parsed.ok) expect(describeProblems(parsed.problems)).toContain(problem);
        const longest = Math.max(0, ...segment.mock.calls.map(([text]) => String(text).length));
        expect(longest).toBeLessThanOrEqual(2_048);
      }
    } finally {
      segment.mockRestore();
    }
  });

  it("is taken when its characters are whole: paired surrogates (an emoji) and escapes written out", () => {
    for (const name of ["Zoë 😀", "\\ud800 as typed", "漢字"])
      expect(parseEvent(purchaseInput({ customer: { id: "cus-1", name } })).ok, name).toBe(true);
  });

  // No clock here (speed belongs in the benchmarks): a walk that copied the path at every level
  // would take hours at this depth, so the test's own time limit catches it; a recursive one
  // would overflow the stack.
  it("is read without recursion and names it by its last ten levels, however deep it nests", {
    timeout: 60_000,
  }, () => {
    let deep: unknown = "\ud800";
    for (let i = 0; i < 200_000; i++) deep = [deep];
    const parsed = parseEvent({ ...purchaseInput({}), deep });
    expect(parsed.ok).toBe(false);
    if (!parsed.ok)
      expect(parsed.problems[0]?.path).toBe(`…${"[0]".repeat(10)} (200001 levels deep)`);
  });
});
