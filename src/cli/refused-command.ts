import { REFUSED_MAX_LIMIT } from "../operations/operator-tools.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";
import { withOperatorTools } from "./operator-session.js";
import { renderRefusedText } from "./operator-text.js";

export interface RefusedOptions {
  readonly config: string;
  readonly limit: string;
  readonly json?: boolean;
}

/**
 * `followups refused`: the events the worker refused, latest first, with their reasons: invalid
 * ones (every problem and its path), and those whose intake failed on every attempt. They stay in
 * the input queue's failed set for 30 days; publishing the corrected event (or the same one,
 * after a failure that was not the event's) takes it in.
 */
export async function runRefused(options: RefusedOptions, io: CommandIo): Promise<number> {
  const limit = /^\d+$/.test(options.limit) ? Number(options.limit) : Number.NaN;
  if (!(limit >= 1 && limit <= REFUSED_MAX_LIMIT)) {
    throw new CommandError(
      `--limit: expected a whole number from 1 to ${REFUSED_MAX_LIMIT}, got ${JSON.stringify(options.limit)}`,
      EXIT.usage,
    );
  }
  const refused = await withOperatorTools(options.config, (tools) => tools.refusedEvents(limit));
  io.out(options.json ? `${JSON.stringify({ refused })}\n` : renderRefusedText(refused));
  return EXIT.ok;
}
