import { escapeUnsafeCharacters as escapeControls } from "../domain/unsafe-text.js";

/**
 * A command's text output, built from what customers, publishers and operators wrote (names,
 * items, ids, reasons, notes), line by line: its own line breaks kept, the control and bidi
 * characters of the text shown as escapes (`\u001b`, `\u200f`; domain/unsafe-text.ts). Printed
 * raw, they could retitle or clear the operator's terminal, recolour or reverse text, or start a
 * line of their own that reads as another entry. `--json` has them as JSON escapes (jsonOutput).
 */
export function terminalText(text: string): string {
  return text.split("\n").map(escapeControls).join("\n");
}

/**
 * A command's `--json` output, one line (or indented by `space`): JSON.stringify escapes C0
 * controls only, so the others above (DEL, C1, bidi marks, overrides, isolates, line and
 * paragraph separators) are written as JSON escapes too (`\u202e`), which read back as the same
 * text: a program gets what was written, a terminal shown the JSON gets nothing it acts on.
 */
export function jsonOutput(value: unknown, space?: number): string {
  return terminalText(`${JSON.stringify(value, null, space)}\n`);
}
