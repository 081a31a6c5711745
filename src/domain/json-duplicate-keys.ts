import { shownPath } from "./shown-path.js";

/**
 * Why a text that gives a key twice is refused, after what names the text: `gives
 * customer.email twice: …`. A long key or a deep path is shortened (shownPath): the body of a
 * 400, or a command's one line, stays short.
 */
export function duplicateKeyProblem(path: readonly (string | number)[]): string {
  return `gives ${shownPath(path)} twice: give each key once (JSON readers differ on which of the two counts)`;
}

/** One open object or list of the text being walked: its keys so far, or its item count. */
interface Open {
  readonly keys: Set<string> | undefined;
  /** The current key (an object) or item index (a list). */
  at: string | number;
}

/**
 * The path of the first key that a JSON text gives twice in one object (`customer.email`, as
 * `["customer", "email"]`), or undefined. JSON.parse keeps the last of the two without a word,
 * where other readers keep the first or refuse: an event checked by a gateway would not be the
 * one taken in. `text` must be valid JSON (parsed already); the walk needs no stack of calls, so
 * any nesting the parser took is walked.
 */
export function duplicateKeyPath(text: string): (string | number)[] | undefined {
  const open: Open[] = [];
  // Whether the next string in an object is a key (after `{` or `,`) rather than a value.
  let keyNext = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (char === QUOTE) {
      const end = stringEnd(text, i);
      const top = open.at(-1);
      if (keyNext && top?.keys) {
        const raw = text.slice(i + 1, end);
        const key = raw.includes("\\") ? (JSON.parse(`"${raw}"`) as string) : raw;
        top.at = key;
        if (top.keys.has(key)) return open.map((entry) => entry.at);
        top.keys.add(key);
        keyNext = false;
      }
      i = end;
    } else if (char === OPEN_BRACE) {
      open.push({ keys: new Set(), at: "" });
      keyNext = true;
    } else if (char === OPEN_BRACKET) {
      open.push({ keys: undefined, at: 0 });
    } else if (char === CLOSE_BRACE || char === CLOSE_BRACKET) {
      open.pop();
      keyNext = false;
    } else if (char === COMMA) {
      const top = open.at(-1);
      if (top?.keys) keyNext = true;
      else if (top) top.at = (top.at as number) + 1;
    }
  }
  return undefined;
}

/** The index of the quote that ends the string opening at `start` (escaped quotes skipped). */
function stringEnd(text: string, start: number): number {
  let end = text.indexOf('"', start + 1);
  for (;;) {
    if (end === -1) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(end - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
