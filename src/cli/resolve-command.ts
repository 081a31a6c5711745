import { type CommandIo, EXIT } from "./io.js";
import { operatorName, withOperatorTools } from "./operator-session.js";
import { jsonOutput, terminalText } from "./operator-text.js";

/**
 * `followups resolve <replyId>`: marks a customer's reply (a complaint) resolved, with a note and
 * who did it; the owners' reports count resolved complaints and how fast. Exit 1 for an unknown
 * reply or one resolved already.
 */
export async function runResolve(
  replyId: string,
  options: {
    readonly config: string;
    readonly note?: string;
    readonly by?: string;
    readonly json?: boolean;
  },
  io: CommandIo,
): Promise<number> {
  return withOperatorTools(options.config, async (tools) => {
    const result = await tools.resolve(replyId, {
      by: operatorName(options.by),
      ...(options.note && { note: options.note }),
    });
    io.out(
      options.json
        ? jsonOutput(result)
        : terminalText(
            `Resolved ${result.id} (by ${result.by} at ${result.resolvedAt}${result.note ? `: ${result.note}` : ""}).\n`,
          ),
    );
    return EXIT.ok;
  });
}
