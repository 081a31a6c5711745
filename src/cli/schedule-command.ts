import { DateTime } from "luxon";
import { readSchedule, renderScheduleText } from "../reports/pending-schedule.js";
import { DeliveryLedger } from "../store/delivery-ledger.js";
import { shardScope } from "../store/keys.js";
import { loadRulesForCommand } from "./check-command.js";
import { commandRedis, commandShards } from "./command-redis.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";

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
 * exact, in every shard; far-future steps are not BullMQ jobs, so queue tools do not show them.
 */
export async function runSchedule(options: ScheduleOptions, io: CommandIo): Promise<number> {
  const days = Number(options.days);
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new CommandError(
      `--days: expected a whole number from 1 to ${MAX_DAYS}, got ${JSON.stringify(options.days)}`,
      EXIT.usage,
    );
  }
  const rules = await loadRulesForCommand(options.config);
  const zone = rules.defaults.timezone;
  const { redis, prefix, env } = await commandRedis();
  try {
    // Scoped to shard 0 of all of them: pending counts add up every shard's.
    const ledger = new DeliveryLedger(
      redis,
      shardScope(prefix, 0, await commandShards(redis, env)),
    );
    const rows = await readSchedule(
      (from, count) => ledger.pendingCounts(from, count),
      zone,
      DateTime.now(),
      days,
    );
    io.out(
      options.json ? `${JSON.stringify({ days: rows })}\n` : renderScheduleText(rows, zone, days),
    );
    return EXIT.ok;
  } finally {
    redis.disconnect();
  }
}
