/** How a refusal names a path in the input: zod paths written as `items[0].unitPrice`, shortened. */
import { cutText } from "./cut-text.js";

/** The longest key, and the most levels, a refusal names whole: it must not repeat the body. */
const KEY_SHOWN = 64;
const LEVELS_SHOWN = 10;

/**
 * A path as a refusal names it: a key past 64 characters cut (its length said), a path past ten
 * levels by its last ten (`….a.b (100001 levels deep)`), the empty path as `""`. The body of a
 * 400, or a command's one line, stays short.
 */
export function shownPath(path: readonly PropertyKey[]): string {
  const shown = path
    .slice(-LEVELS_SHOWN)
    .map((key) =>
      typeof key === "string" && key.length > KEY_SHOWN
        ? `${cutText(key, KEY_SHOWN)}… (${key.length} characters)`
        : key,
    );
  return path.length > LEVELS_SHOWN
    ? `…${typeof shown[0] === "string" ? "." : ""}${formatPath(shown)} (${path.length} levels deep)`
    : formatPath(shown) || '""';
}

/** Formats a zod path as `items[0].unitPrice`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = "";
  for (const key of path) {
    if (typeof key === "number") text += `[${key}]`;
    else text += text === "" ? String(key) : `.${String(key)}`;
  }
  return text;
}
