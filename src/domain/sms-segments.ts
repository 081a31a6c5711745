/**
 * SMS length as carriers bill it. A body that fits GSM-7 gets 160 septets in one message, 153 per
 * part once split; a single character outside GSM-7 (a curly apostrophe, an emoji) switches the
 * whole body to UCS-2: 70 units, 67 per part.
 */

const GSM7_BASIC = new Set(
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà",
);
/** Characters GSM-7 sends as an escape plus a septet: they count twice. */
const GSM7_EXTENSION = new Set("\f^{}\\[~]|€");

/** How a body is encoded; for UCS-2, the first character that forced it (for operator messages). */
export type SmsEncoding = { encoding: "GSM-7" } | { encoding: "UCS-2"; because: string };

/** Which encoding a body needs. */
export function smsEncoding(body: string): SmsEncoding {
  for (const char of body) {
    if (!GSM7_BASIC.has(char) && !GSM7_EXTENSION.has(char)) {
      return { encoding: "UCS-2", because: char };
    }
  }
  return { encoding: "GSM-7" };
}

/** Counts SMS segments the way carriers do: GSM-7 160/153 septets, otherwise UCS-2 70/67 units. */
export function countSmsSegments(body: string): number {
  const characters = Array.from(body);
  const isGsm7 = smsEncoding(body).encoding === "GSM-7";
  const units = isGsm7
    ? characters.map((char) => (GSM7_EXTENSION.has(char) ? 2 : 1))
    : characters.map((char) => char.length);
  const single = isGsm7 ? 160 : 70;
  const perPart = isGsm7 ? 153 : 67;
  const total = units.reduce((sum, size) => sum + size, 0);
  if (total <= single) return 1;
  let segments = 1;
  let used = 0;
  for (const size of units) {
    if (used + size > perPart) {
      segments++;
      used = 0;
    }
    used += size;
  }
  return segments;
}
