import { isUtf8 } from "node:buffer";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { duplicateKeyPath, duplicateKeyProblem } from "../domain/json-duplicate-keys.js";

/** Where a command writes; tests pass in-memory sinks, the binary passes the process streams. */
export interface CommandIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Whether stderr is a terminal (progress bars only draw there). */
  readonly interactive: boolean;
  /** Resolves once `out` can take more (backpressure, for commands that stream a lot); absent: always. */
  readonly drained?: () => Promise<void>;
}

/** The process's own streams. */
export const processIo: CommandIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  interactive: Boolean(process.stderr.isTTY),
  drained: async () => {
    if (process.stdout.writableNeedDrain) await once(process.stdout, "drain");
  },
};

/** Exit codes shared by every command. */
export const EXIT = { ok: 0, invalid: 1, usage: 2 } as const;

/** A user-facing failure: printed without a stack trace, exits with `code`. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly code: number = EXIT.invalid,
  ) {
    super(message);
    this.name = "CommandError";
  }
}

/** What a number flag takes: a range, and whether a fraction is written (`0.5`) or only digits. */
export interface NumberFlagBounds {
  readonly min: number;
  readonly max: number;
  /** Digits with an optional fraction (`2`, `0.5`), not only digits. */
  readonly fraction?: boolean;
  /** `min` itself is refused: the value must be above it. */
  readonly aboveMin?: boolean;
}

/**
 * A command's number flag, as written: digits (`--days 30`), or with `fraction` digits and an
 * optional fraction (`--wait 0.5`). Number() would also read `0x10`, `1e3`, ` 5 ` or an empty
 * string; those are refused, as is a value out of bounds, with the flag and what it expects.
 */
export function numberFlag(
  flag: string,
  text: string | undefined,
  bounds: NumberFlagBounds,
  expected = `a whole number from ${bounds.min} to ${bounds.max}`,
): number {
  const written = (bounds.fraction ? /^\d+(?:\.\d+)?$/ : /^\d+$/).test(text ?? "");
  const value = written ? Number(text) : Number.NaN;
  const fromMin = bounds.aboveMin ? value > bounds.min : value >= bounds.min;
  if (!(fromMin && value <= bounds.max))
    throw new CommandError(
      `${flag}: expected ${expected}, got ${JSON.stringify(text)}`,
      EXIT.usage,
    );
  return value;
}

/**
 * Reads a file argument, or standard input for "-", as UTF-8 text without a byte order mark.
 * Text in another encoding is refused, not read with U+FFFD for what it cannot decode: a name
 * the customer never had would be published (POST /v1/events refuses such a body too).
 */
export async function readInput(file: string): Promise<string> {
  let bytes: Buffer;
  if (file === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    bytes = Buffer.concat(chunks);
  } else {
    try {
      bytes = await readFile(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new CommandError(
        `${file}: ${code === "ENOENT" ? "file not found" : code === "EISDIR" ? "a directory, not a file" : String(error)}`,
      );
    }
  }
  if (!isUtf8(bytes)) throw new CommandError(`${file}: not UTF-8 text; save it as UTF-8`);
  const text = bytes.toString("utf8");
  return text.startsWith("\uFEFF") ? text.slice(1) : text;
}

/** A date-time that names its offset; without one, luxon would read it in the host's zone. */
export function namesOffset(text: string): boolean {
  return /T.*(?:Z|[+-]\d{2}(?::?\d{2})?)$/i.test(text.trim());
}

/**
 * Why a text is not JSON: the parser's message, and plainly "cut short" when the text ends before
 * its JSON does (the parser then names a position at the end, which says little).
 */
export function jsonProblem(text: string, error: Error, what: "line" | "input" = "line"): string {
  const at = /at position (\d+)/.exec(error.message)?.[1];
  const cutShort =
    error.message.includes("Unexpected end of JSON input") ||
    (at !== undefined && Number(at) >= text.trimEnd().length);
  return cutShort
    ? `not valid JSON, cut short: the ${what} ends before the JSON does (${error.message})`
    : `not valid JSON (${error.message})`;
}

/**
 * Parses JSON text, naming the file and position of a syntax error, and the key a text gives
 * twice (JSON.parse would keep the last without a word): `event 2 gives orderId twice` in a list.
 */
export function parseJsonText(text: string, source: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new CommandError(`${source}: ${jsonProblem(text, error as Error, "input")}`);
  }
  const twice = duplicateKeyPath(text);
  if (twice) {
    const [first, ...rest] = twice;
    throw new CommandError(
      Array.isArray(value) && typeof first === "number" && rest.length > 0
        ? `${source}: event ${first + 1} ${duplicateKeyProblem(rest)}`
        : `${source}: ${duplicateKeyProblem(twice)}`,
    );
  }
  return value;
}

/** Why a line of NDJSON is refused (not JSON, or a key given twice); undefined for a good one. */
export function parseJsonLine(line: string): { value: unknown } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return { problem: jsonProblem(line, error as Error) };
  }
  const twice = duplicateKeyPath(line);
  return twice ? { problem: duplicateKeyProblem(twice) } : { value };
}
