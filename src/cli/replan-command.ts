import { DateTime } from "luxon";
import { afterRefunds } from "../domain/refund.js";
import type { RuleSet } from "../domain/rules.js";
import { replanOf } from "../queue/replanner.js";
import { type PreviewedStep, previewByRule, renderPreviewText } from "../reports/replan-preview.js";
import { OrderStore } from "../store/order-store.js";
import { type ShardStores, shardStores } from "../store/shards.js";
import { loadRulesForCommand } from "./check-command.js";
import { commandRedis, commandShards } from "./command-redis.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";

export interface ReplanOptions {
  readonly config: string;
  readonly dryRun?: boolean;
  readonly json?: boolean;
}

/**
 * `followups replan --dry-run`: what a rules directory would do to the follow-ups waiting in every
 * shard's schedule, against the live Redis, before it is deployed. Read-only: workers re-plan when
 * they load newer rules.
 */
export async function runReplan(options: ReplanOptions, io: CommandIo): Promise<number> {
  if (!options.dryRun) {
    throw new CommandError(
      "replan only previews: pass --dry-run. Workers apply new rules themselves when they load them.",
      EXIT.usage,
    );
  }
  const rules = await loadRulesForCommand(options.config);
  const { redis, prefix, horizonMs, env } = await commandRedis();
  try {
    const shards = shardStores(redis, prefix, await commandShards(redis, env));
    const orders = new OrderStore(redis, prefix);
    const now = DateTime.utc();
    const steps: PreviewedStep[] = [];
    // Every shard's schedule: an event's steps are in its customer's shard.
    for (const shard of shards.all())
      steps.push(...(await previewShard(shard, orders, rules, now, horizonMs)));
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

/** What the rules would do to the steps waiting in one shard's schedule. */
async function previewShard(
  { schedule, store, history }: ShardStores,
  orders: OrderStore,
  rules: RuleSet,
  now: DateTime,
  horizonMs: number,
): Promise<PreviewedStep[]> {
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
    if (buckets.length < 100) return steps;
    after = buckets[buckets.length - 1] ?? after;
  }
}
