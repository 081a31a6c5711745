/** Characters as a reader sees them: a letter with its accents, an emoji with its modifiers. */
const GRAPHEMES = new Intl.Segmenter(undefined, { granularity: "grapheme" });
/** A character longer than this (a letter under a heap of accents) is cut between code points. */
const LONGEST_KEPT_WHOLE = 64;
/** How much before the cut is segmented: more than the longest character kept whole. */
const WINDOW = 2 * LONGEST_KEPT_WHOLE;
/** Below U+0300 (the combining accents) no character joins the one before it, nor the next. */
const JOINS_NOTHING_BELOW = 0x300;

/**
 * The longest start of `text` within `maxLength` UTF-16 units (what a header, a stored field or a
 * JavaScript length is measured in) that ends between two characters as a reader sees them: never
 * inside a surrogate pair (half an emoji, which UTF-8 cannot hold), a letter and its combining
 * accents, a flag or an emoji sequence. Text that fits is returned as it is; a cut between two
 * Latin-1 characters (but CR LF) is made at once; else the 128 units before it are segmented.
 */
export function cutText(text: string, maxLength: number): string {
  if (text.length <= maxLength) return text;
  if (maxLength <= 0) return "";
  const before = text.charCodeAt(maxLength - 1);
  const after = text.charCodeAt(maxLength);
  if (
    before < JOINS_NOTHING_BELOW &&
    after < JOINS_NOTHING_BELOW &&
    !(before === 13 && after === 10)
  )
    return text.slice(0, maxLength);
  const from = windowStart(text, maxLength);
  const within = GRAPHEMES.segment(text.slice(from, maxLength + 2)).containing(maxLength - from);
  const start = from + (within?.index ?? maxLength - from);
  if (maxLength - start <= LONGEST_KEPT_WHOLE) return text.slice(0, start);
  return text.slice(0, before >= 0xd800 && before <= 0xdbff ? maxLength - 1 : maxLength);
}

/**
 * Where to start segmenting for a cut at `maxLength`: WINDOW units before it, not inside a
 * surrogate pair, and back to the start of a run of regional indicators (flags pair them from the
 * run's start, so a window inside the run could pair them the other way).
 */
function windowStart(text: string, maxLength: number): number {
  let from = Math.max(0, maxLength - WINDOW);
  const unit = text.charCodeAt(from);
  if (from > 0 && unit >= 0xdc00 && unit <= 0xdfff) from--;
  while (from >= 2 && regionalIndicatorAt(text, from - 2)) from -= 2;
  return from;
}

/** A regional indicator (U+1F1E6 to U+1F1FF, half a flag) at `at`, as its surrogate pair. */
function regionalIndicatorAt(text: string, at: number): boolean {
  const low = text.charCodeAt(at + 1);
  return text.charCodeAt(at) === 0xd83c && low >= 0xdde6 && low <= 0xddff;
}

/** How many characters a reader sees in `text` (grapheme clusters), for positions in messages. */
export function countGraphemes(text: string): number {
  let count = 0;
  for (const _ of GRAPHEMES.segment(text)) count++;
  return count;
}
