/**
 * Characters in untrusted text (what customers, publishers and operators wrote) that change how
 * a terminal or a plain-text message shows the text around them: C0 and C1 controls and DEL (line
 * breaks, escape sequences that retitle, clear or recolour a terminal), the bidi marks (U+061C
 * ARABIC LETTER MARK, U+200E LRM, U+200F RLM), embeddings and overrides (U+202A–U+202E) and
 * isolates (U+2066–U+2069), which reorder the rest of a line, and the line and paragraph
 * separators (U+2028, U+2029), which some terminals and editors break a line at.
 */
const UNSAFE = "\\p{Cc}\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069";

/** One unsafe character, everywhere (`replace` only: a global regex keeps state in `test`). */
const UNSAFE_CHARACTER = new RegExp(`[${UNSAFE}]`, "gu");
/** A run of them, everywhere. */
const UNSAFE_RUN = new RegExp(`[${UNSAFE}]+`, "gu");

/** A UTF-16 surrogate without its other half: JSON can write one (`"\ud800"`), UTF-8 cannot. */
export const UNPAIRED_SURROGATE =
  /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The text with each of them shown as an escape (`\u001b`, `\u202e`): one line, nothing hidden. */
export function escapeUnsafeCharacters(text: string): string {
  return text.replace(
    UNSAFE_CHARACTER,
    (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** The text with each run of them as one space (for a reader, not for reading back). */
export function spaceUnsafeCharacters(text: string): string {
  return text.replace(UNSAFE_RUN, " ");
}

/**
 * Untrusted text made safe for a terminal line, a text email or a mail's subject: each run of
 * unsafe characters as one space, spaces collapsed, trimmed.
 */
export function plainText(text: string): string {
  return spaceUnsafeCharacters(text).replace(/ {2,}/g, " ").trim();
}
