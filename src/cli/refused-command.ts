import { REFUSED_MAX_LIMIT } from "../operations/refused-limits.js";
import { type CommandIo, EXIT, numberFlag } from "./io.js";
import { withOperatorTools } from "./operator-session.js";
import { jsonOutput, renderRefusedText } from "./operator-text.js";

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
  const limit = numberFlag("--limit", options.limit, { min: 1, max: REFUSED_MAX_LIMIT });
  const refused = await withOperatorTools(options.config, (tools) => tools.refusedEvents(limit), {
    readOnly: true,
  });
  io.out(options.json ? jsonOutput({ refused }) : renderRefusedText(refused));
  return EXIT.ok;
}
