/** Characters as a reader sees them: a letter with its accents, an emoji with its modifiers. */
const GRAPHEMES = new Intl.Segmenter(undefined, { granularity: "grapheme" });
/** A character longer than this (a letter under a heap of accents) is cut between code points. */
const LONGEST_KEPT_WHOLE = 64;
/** How much before the cut is segmented: more than the longest character kept whole. */
const WINDOW = 2 * LONGEST_KEPT_WHOLE;
/** Below U+0300 (the combining accents) no character joins the one before it, nor the next. */
const JOINS_NOTHING_BELOW = 0x300;
/**
 * A character (at lastIndex) that no grapheme rule joins to the one before it or the next, so that
 * two of them side by side have a boundary between them (GB4, GB5, GB999): letters of most
 * scripts, digits, punctuation, symbols, emoji and Han beyond the BMP. Not: marks and format
 * characters (Extend, SpacingMark, ZWJ, Prepend's U+0600…), unassigned code points and halves of a
 * surrogate pair, emoji modifiers, regional indicators, CR (CR LF), Hangul jamo and syllables
 * (GB6-GB8), Thai and Lao AM (SpacingMark), Malayalam dot reph (Prepend), and letters beyond the
 * BMP but Han (Prepend letters of Brahmic scripts): those are segmented.
 */
const JOINS_NOTHING =
  /(?![\p{M}\p{Cf}\p{Cn}\p{Cs}\p{Grapheme_Extend}\p{Emoji_Modifier}\p{Regional_Indicator}\r\u0d4e\u0e33\u0eb3\u1100-\u11ff\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff])(?:[\0-\uffff]|\p{Extended_Pictographic}|\p{Script=Han})/uy;
/**
 * A character that a grapheme rule may join to another (searched for in a whole text: global):
 * those JOINS_NOTHING is not, but Hangul syllables, as a cluster of a syllable and more holds a
 * jamo or a mark (found here), and CR but before LF, as a cluster of CR and more is CR LF. So a
 * Korean text, or one of lone CRs, is not segmented whole.
 */
const MAY_JOIN_ANOTHER =
  /[\p{M}\p{Cf}\p{Cn}\p{Cs}\p{Grapheme_Extend}\p{Emoji_Modifier}\p{Regional_Indicator}\u0d4e\u0e33\u0eb3\u1100-\u11ff\ua960-\ua97f\ud7b0-\ud7ff]|\r(?=\n)|(?=[\u{10000}-\u{10ffff}])(?!\p{Extended_Pictographic}|\p{Script=Han})[\u{10000}-\u{10ffff}]/gu;
/** How much of a text is segmented at once: V8 walks one long text's segments in quadratic time. */
const CHUNK = 1_024;
/**
 * The longest start of `text` within `maxLength` UTF-16 units (what a header, a stored field or a
 * JavaScript length is measured in) that ends between two characters as a reader sees them: never
 * inside a surrogate pair (half an emoji, which UTF-8 cannot hold), a letter and its combining
 * accents, a flag or an emoji sequence. Text that fits is returned as it is; a cut between two
 * Latin-1 characters (but CR LF), or two characters that join nothing (JOINS_NOTHING), is made at
 * once; else the 128 units before it are segmented.
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
  if (joinsNothingAcross(text, maxLength)) return text.slice(0, maxLength);
  // Inside a surrogate pair: before it, if the pair and what it follows join nothing.
  if (isHighSurrogate(before) && maxLength >= 2 && joinsNothingAcross(text, maxLength - 1))
    return text.slice(0, maxLength - 1);
  const from = windowStart(text, maxLength);
  const within = GRAPHEMES.segment(text.slice(from, maxLength + 2)).containing(maxLength - from);
  const start = from + (within?.index ?? maxLength - from);
  if (maxLength - start <= LONGEST_KEPT_WHOLE) return text.slice(0, start);
  return text.slice(0, before >= 0xd800 && before <= 0xdbff ? maxLength - 1 : maxLength);
}

/**
 * Whether a cut at `at` falls between two characters that join nothing (JOINS_NOTHING): never
 * inside a surrogate pair, and the character that ends there (a unit or a pair) and the one that
 * starts there both such.
 */
function joinsNothingAcross(text: string, at: number): boolean {
  const before = text.charCodeAt(at - 1);
  if (isHighSurrogate(before)) return false;
  JOINS_NOTHING.lastIndex = isLowSurrogate(before) && at >= 2 ? at - 2 : at - 1;
  if (!JOINS_NOTHING.test(text) || JOINS_NOTHING.lastIndex !== at) return false;
  return JOINS_NOTHING.test(text);
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
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

/**
 * Whether a character as a reader sees it (a grapheme cluster) is written in `text` as more than
 * one code point: a letter and its accent apart, an emoji with a skin tone, a flag, CR LF. In
 * linear time: characters that join no other (but MAY_JOIN_ANOTHER) are passed over, and only
 * from the one before each other character on, CHUNK units at a time, is the text segmented.
 */
export function writesCharacterAsSeveral(text: string): boolean {
  let at = 0;
  while (at < text.length) {
    MAY_JOIN_ANOTHER.lastIndex = at;
    const found = MAY_JOIN_ANOTHER.exec(text);
    if (!found) return false;
    // A boundary: the text's start or `at`, or between two characters that join nothing.
    let from = found.index;
    if (from > at) from -= isLowSurrogate(text.charCodeAt(from - 1)) && from - 2 >= at ? 2 : 1;
    const chunk = text.slice(from, from + CHUNK);
    let last = 0;
    for (const { segment, index } of GRAPHEMES.segment(chunk)) {
      // A cluster the chunk's end cut short is the start of one: two code points prove it.
      if (segment.length > 1 && (segment.length > 2 || !isHighSurrogate(segment.charCodeAt(0))))
        return true;
      last = index;
    }
    if (from + chunk.length >= text.length) return false;
    at = from + Math.max(last, 1);
  }
  return false;
}
