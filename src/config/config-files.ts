/**
 * What the config directory holds and how its problems are reported: shared by the rules loader
 * and the templates loader, so neither imports the other.
 */

/** Name of the rules file inside the config directory. */
export const RULES_FILE_NAME = "rules.yaml";

/** A problem in a config file, located for the operator who has to fix it. */
export interface ConfigProblem {
  readonly file: string;
  /** 1-based; 0 when the problem has no place in the file (e.g. the file is missing). */
  readonly line: number;
  readonly column: number;
  /** Dotted path such as `rules[2].steps[0].delay`; empty for the file as a whole. */
  readonly path: string;
  readonly message: string;
}

/** `config/rules.yaml:12:7 rules[2].steps[0].delay: expected …` */
export function formatProblem(problem: ConfigProblem): string {
  const where =
    problem.line > 0 ? `${problem.file}:${problem.line}:${problem.column}` : problem.file;
  return problem.path
    ? `${where} ${problem.path}: ${problem.message}`
    : `${where} ${problem.message}`;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A config file's text, or where its first byte that is not UTF-8 is: a file saved as Latin-1
 * (`f\xfcr`) would otherwise be read with U+FFFD in place of the character, and sent that way.
 */
export function decodeConfigText(
  bytes: Uint8Array,
):
  | { ok: true; text: string }
  | { ok: false; line: number; column: number; message: string; lossyText: string } {
  try {
    return { ok: true, text: UTF8.decode(bytes) };
  } catch {
    const at = firstInvalidByte(bytes);
    const lineStart = bytes.lastIndexOf(0x0a, at - 1) + 1;
    const before = UTF8.decode(bytes.subarray(lineStart, at));
    const byte = (bytes[at] ?? 0).toString(16).toUpperCase().padStart(2, "0");
    return {
      ok: false,
      line: bytes.subarray(0, lineStart).filter((b) => b === 0x0a).length + 1,
      column: [...before].length + 1,
      message: `not UTF-8 (byte 0x${byte}): save the file as UTF-8 (read as it is, that character would be \u{FFFD})`,
      /** The text read as it is, so that the rest of the file can still be checked. */
      lossyText: new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes),
    };
  }
}

/** Offset of the first byte that does not start a well-formed UTF-8 sequence. */
function firstInvalidByte(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i] ?? 0;
    const length = lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
    try {
      UTF8.decode(bytes.subarray(i, i + length));
    } catch {
      return i;
    }
    i += length;
  }
  return bytes.length;
}
