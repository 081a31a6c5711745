import type { CommandIo } from "../../src/cli/io.js";

/** A command's output and its messages to stderr collected in memory, for tests that call a command directly. */
export function captureIo(): CommandIo & { output(): string; errors(): string } {
  let text = "";
  let errors = "";
  return {
    out: (chunk) => {
      text += chunk;
    },
    err: (chunk) => {
      errors += chunk;
    },
    interactive: false,
    output: () => text,
    errors: () => errors,
  };
}
