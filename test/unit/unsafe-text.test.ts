import { describe, expect, it } from "vitest";
import { terminalText } from "../../src/cli/operator-text.js";
import {
  escapeUnsafeCharacters,
  plainText,
  spaceUnsafeCharacters,
} from "../../src/domain/unsafe-text.js";

/** Every character that reorders, breaks or restyles a line around it. */
const UNSAFE = [
  "\u0000",
  "\u0007",
  "\u001b",
  "\r",
  "\u007f",
  "\u0085",
  "\u009b",
  "\u061c",
  "\u200e",
  "\u200f",
  "\u2028",
  "\u2029",
  ...["\u202a", "\u202b", "\u202c", "\u202d", "\u202e"],
  ...["\u2066", "\u2067", "\u2068", "\u2069"],
];

describe("untrusted text for a terminal", () => {
  it("shows every control, bidi mark, embedding, override, isolate and line separator as an escape", () => {
    for (const character of UNSAFE) {
      const escaped = escapeUnsafeCharacters(`Ana${character}Novak`);
      const code = character.charCodeAt(0).toString(16).padStart(4, "0");
      expect(escaped, code).toBe(`Ana\\u${code}Novak`);
    }
    // A right-to-left mark would show "Novak Ana" reversed after it, as "kavoN".
    expect(escapeUnsafeCharacters("\u200fAna \u061cNovak\u200e")).toBe(
      "\\u200fAna \\u061cNovak\\u200e",
    );
  });

  it("keeps what only looks unusual: letters of any script, emoji joined by ZWJ, spaces", () => {
    for (const text of ["Zoë Łódź", "שלום עליכם", "مرحبا", "👩‍👩‍👧", "漢字 テスト"])
      expect(escapeUnsafeCharacters(text)).toBe(text);
  });

  it("keeps a command's own line breaks, and escapes the rest line by line", () => {
    expect(terminalText("Resolved r-1 (by dana: rang \u202eAna\u2028back).\nnext\n")).toBe(
      "Resolved r-1 (by dana: rang \\u202eAna\\u2028back).\nnext\n",
    );
  });

  it("makes them spaces in plain text for a reader (reports, an operator's one-line reason)", () => {
    expect(spaceUnsafeCharacters("Ana\u200f\u200eNovak")).toBe("Ana Novak");
    for (const character of UNSAFE) expect(plainText(`Ana${character}Novak`)).toBe("Ana Novak");
  });
});
