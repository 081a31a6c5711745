import { DateTime } from "luxon";
import { afterRefunds } from "../domain/refund.js";
import { hasCooldowns, type RuleSet } from "../domain/rules.js";
import { dueFloors, NONE, replanOf } from "../queue/replanner.js";
import { PreviewTally, renderPreviewText, unreadableNotice } from "../reports/replan-preview.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import { OrderStore } from "../store/order-store.js";
import { isRedisUnavailable } from "../store/redis-client.js";
import { RulesGenerations } from "../store/rules-generations.js";
import { type ShardStores, shardStores } from "../store/shards.js";
import { loadConfigForCommand } from "./check-command.js";
import { commandRedis, commandShards } from "./command-redis.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";
import { jsonOutput } from "./operator-text.js";

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
  // Rules and templates, as a worker loads them: a worker keeps its config when either is broken,
  // so a draft with a broken template would re-plan nothing, whatever its rules say.
  const { rules } = await loadConfigForCommand(options.config);
  const { redis, prefix, horizonMs, env } = await commandRedis();
  try {
    const shards = shardStores(redis, prefix, await commandShards(redis, env));
    const orders = new OrderStore(redis, prefix);
    const now = DateTime.utc();
    // As the workers will: rules older than the newest a worker loaded re-plan nothing, and a
    // purchase already re-planned under these rules (or newer) is left alone.
    const known = await new RulesGenerations(redis, prefix).known(rules.version);
    const generation = known.generation ?? known.latest + 1;
    const older = generation < known.latest;
    const tally = new PreviewTally();
    // Every shard's schedule: an event's steps are in its customer's shard.
    if (!older)
      for (const shard of shards.all())
        await previewShard(shard, orders, rules, now, horizonMs, generation, tally);
    const byRule = tally.result();
    const unreadable = tally.unreadable();
    const about = { generation, latestGeneration: known.latest, applies: !older };
    io.out(
      options.json
        ? jsonOutput({ rulesVersion: rules.version, ...about, rules: byRule, unreadable })
        : older
          ? `Rules ${rules.version} are generation ${generation}, older than generation ${known.latest} that workers run: workers loading them re-plan nothing ("newer rules are deployed elsewhere"). Nothing was changed.\n`
          : renderPreviewText(byRule, rules.version, unreadable),
    );
    // Said on stderr too when the output is for a program: a person piping it sees it.
    if (options.json && unreadable.count > 0) io.err(unreadableNotice(unreadable));
    // Still 0: the preview completed, and the workers too leave such a purchase as planned (its
    // count is in the output for a script that gates on it).
    return EXIT.ok;
  } finally {
    redis.disconnect();
  }
}

const UNREADABLE = Symbol("unreadable");

/**
 * The purchase as the workers would re-plan it, or UNREADABLE when its stored purchase cannot be
 * read (a format this version does not know, damaged bytes): the workers leave its steps as
 * planned, and the preview counts it apart instead of failing. Redis away still fails the preview.
 */
async function readable(store: FollowUpStore, eventId: string) {
  try {
    return await store.loadEvent(eventId);
  } catch (error) {
    if (isRedisUnavailable(error)) throw error;
    return UNREADABLE;
  }
}

/** What the rules would do to the steps waiting in one shard's schedule. */
async function previewShard(
  { schedule, store, history, thankYous }: ShardStores,
  orders: OrderStore,
  rules: RuleSet,
  now: DateTime,
  horizonMs: number,
  generation: number,
  tally: PreviewTally,
): Promise<void> {
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
            const planned = await store.generationOf(eventId);
            if (planned !== undefined && planned >= generation) return [];
            const [records, event] = await Promise.all([
              store.allStepRecords(eventId),
              readable(store, eventId),
            ]);
            if (event === UNREADABLE) {
              // As the workers: one with nothing left to re-plan is passed over, read or not.
              if ([...records.values()].some((r) => r.state === "scheduled"))
                tally.addUnreadable(eventId);
              return [];
            }
            if (!event) return [];
            const [past, order, floors, recent] = await Promise.all([
              history.historyAt(eventId),
              orders.get(event.orderId),
              dueFloors(thankYous, event.customer.id, eventId, records, rules),
              // A step that would move within another purchase's cooldown is skipped, as workers do.
              hasCooldowns(rules) ? history.recentSteps(event.customer.id, eventId) : undefined,
            ]);
            const effective = afterRefunds(event, order).event;
            const plan = replanOf(
              eventId,
              effective,
              records,
              rules,
              recent ? { ...past, recent } : past,
              now,
              horizonMs,
              NONE,
              floors,
            );
            return plan.steps.map((step) => ({
              ruleId: step.ruleId,
              action: step.action,
              shiftMs: step.dueAt - step.fromDueAt,
              ...(step.reason && { code: step.reason.code }),
            }));
          }),
        );
        for (const step of previews.flat()) tally.add(step);
        if (count < 1_000) break;
        offset += count;
      }
    }
    if (buckets.length < 100) return;
    after = buckets[buckets.length - 1] ?? after;
  }
}
