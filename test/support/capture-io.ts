import type { CommandIo } from "../../src/cli/io.js";

/** A command's output collected in memory (stderr dropped), for tests that call a command directly. */
export function captureIo(): CommandIo & { output(): string } {
  let text = "";
  return {
    out: (chunk) => {
      text += chunk;
    },
    err: () => undefined,
    interactive: false,
    output: () => text,
  };
}
