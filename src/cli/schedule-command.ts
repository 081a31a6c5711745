import { renderScheduleText } from "../reports/pending-schedule.js";
import { type CommandIo, EXIT, numberFlag } from "./io.js";
import { withOperatorTools } from "./operator-session.js";
import { jsonOutput } from "./operator-text.js";

export interface ScheduleOptions {
  readonly config: string;
  readonly days: string;
  readonly json?: boolean;
}

/** Longest look-ahead: pending counts are kept per day, and a year is what rules plan ahead. */
const MAX_DAYS = 400;

/**
 * `followups schedule`: what is coming. Pending follow-ups by due date (in the rules' default
 * time zone), channel and rule, from the ledger's pending counts, which every state change keeps
 * exact, in every shard, with a follow-up whose job waits past its due time on the day it will go
 * (operations/postponed-moves.ts); far-future steps are not BullMQ jobs, so queue tools do not
 * show them.
 */
export async function runSchedule(options: ScheduleOptions, io: CommandIo): Promise<number> {
  const days = numberFlag("--days", options.days, { min: 1, max: MAX_DAYS });
  const { rows, zone } = await withOperatorTools(
    options.config,
    async (tools, rules) => ({
      rows: await tools.schedule(days),
      zone: rules.defaults.timezone,
    }),
    { readOnly: true },
  );
  io.out(options.json ? jsonOutput(rows) : renderScheduleText(rows.days, zone, days));
  return EXIT.ok;
}
