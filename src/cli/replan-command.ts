import { DateTime } from "luxon";
import { afterRefunds } from "../domain/refund.js";
import { replanOf } from "../queue/replanner.js";
import { type PreviewedStep, previewByRule, renderPreviewText } from "../reports/replan-preview.js";
import { CustomerHistoryStore } from "../store/customer-history.js";
import { FollowUpSchedule } from "../store/follow-up-schedule.js";
import { FollowUpStore } from "../store/follow-up-store.js";
import { OrderStore } from "../store/order-store.js";
import { loadRulesForCommand } from "./check-command.js";
import { commandRedis } from "./command-redis.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";

export interface ReplanOptions {
  readonly config: string;
  readonly dryRun?: boolean;
  readonly json?: boolean;
}

/**
 * `followups replan --dry-run`: what a rules directory would do to the follow-ups waiting in the
 * schedule, against the live Redis, before it is deployed. Read-only: workers re-plan when they
 * load newer rules.
 */
export async function runReplan(options: ReplanOptions, io: CommandIo): Promise<number> {
  if (!options.dryRun) {
    throw new CommandError(
      "replan only previews: pass --dry-run. Workers apply new rules themselves when they load them.",
      EXIT.usage,
    );
  }
  const rules = await loadRulesForCommand(options.config);
  const { redis, prefix, horizonMs } = await commandRedis();
  try {
    const schedule = new FollowUpSchedule(redis, prefix);
    const store = new FollowUpStore(redis, prefix);
    const history = new CustomerHistoryStore(redis, prefix);
    const orders = new OrderStore(redis, prefix);
    const now = DateTime.utc();
    const steps: PreviewedStep[] = [];
    const seen = new Set<string>();
    for (let after = -1; ; ) {
      const buckets = await schedule.bucketsAfter(after, 100);
      for (const bucket of buckets) {
        for (let offset = 0; ; ) {
          const { refs, count } = await schedule.read(bucket, offset, 1_000);
          const fresh = [...new Set(refs.map((r) => r.eventId))].filter((id) => !seen.has(id));
          for (const id of fresh) seen.add(id);
          const previews = await Promise.all(
            fresh.map(async (eventId) => {
              const [records, event] = await Promise.all([
                store.allStepRecords(eventId),
                store.loadEvent(eventId),
              ]);
              if (!event) return [];
              const [past, order] = await Promise.all([
                history.historyAt(eventId),
                orders.get(event.orderId),
              ]);
              const effective = afterRefunds(event, order).event;
              const plan = replanOf(eventId, effective, records, rules, past, now, horizonMs);
              return plan.steps.map((step) => ({
                ruleId: step.ruleId,
                action: step.action,
                shiftMs: step.dueAt - step.fromDueAt,
                ...(step.reason && { code: step.reason.code }),
              }));
            }),
          );
          steps.push(...previews.flat());
          if (count < 1_000) break;
          offset += count;
        }
      }
      if (buckets.length < 100) break;
      after = buckets[buckets.length - 1] ?? after;
    }
    const byRule = previewByRule(steps);
    io.out(
      options.json
        ? `${JSON.stringify({ rulesVersion: rules.version, rules: byRule })}\n`
        : renderPreviewText(byRule, rules.version),
    );
    return EXIT.ok;
  } finally {
    redis.disconnect();
  }
}
