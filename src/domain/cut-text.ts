/** Characters as a reader sees them: a letter with its accents, an emoji with its modifiers. */
const GRAPHEMES = new Intl.Segmenter(undefined, { granularity: "grapheme" });
/** A character longer than this (a letter under a heap of accents) is cut between code points. */
const LONGEST_KEPT_WHOLE = 64;

/**
 * The longest start of `text` within `maxLength` UTF-16 units (what a header, a stored field or a
 * JavaScript length is measured in) that ends between two characters as a reader sees them: never
 * inside a surrogate pair (half an emoji, which UTF-8 cannot hold), a letter and its combining
 * accents, a flag or an emoji sequence. Text that fits is returned as it is, without segmenting.
 */
export function cutText(text: string, maxLength: number): string {
  if (text.length <= maxLength) return text;
  if (maxLength <= 0) return "";
  const start = GRAPHEMES.segment(text).containing(maxLength)?.index ?? maxLength;
  if (maxLength - start <= LONGEST_KEPT_WHOLE) return text.slice(0, start);
  const last = text.charCodeAt(maxLength - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? maxLength - 1 : maxLength);
}

/** How many characters a reader sees in `text` (grapheme clusters), for positions in messages. */
export function countGraphemes(text: string): number {
  let count = 0;
  for (const _ of GRAPHEMES.segment(text)) count++;
  return count;
}
