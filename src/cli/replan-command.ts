import { DateTime } from "luxon";
import { afterRefunds } from "../domain/refund.js";
import { cooldownSteps, hasCooldowns, type RuleSet, type StepKind } from "../domain/rules.js";
import { dueFloors, NONE, replanOf } from "../queue/replanner.js";
import { PreviewTally, renderPreviewText, unreadableNotice } from "../reports/replan-preview.js";
import { type RememberedStep, recentOf } from "../store/customer-history.js";
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

/** A remembered step's field in the customer's recent steps, but for its event id. */
function fieldOf(step: Pick<RememberedStep, "by" | "name" | "stepId">): string {
  const key = `${step.by}:${step.name}`;
  return step.stepId === undefined ? key : `${key} ${step.stepId}`;
}

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
  // The steps under a cooldown of each purchase this preview re-planned, by customer and event.
  const replanned = new Map<string, Map<string, RememberedStep[]>>();
  for (let after = -1; ; ) {
    const buckets = await schedule.bucketsAfter(after, 100);
    for (const bucket of buckets) {
      for (let offset = 0; ; ) {
        const { refs, count } = await schedule.read(bucket, offset, 1_000);
        const fresh = [...new Set(refs.map((r) => r.eventId))].filter((id) => !seen.has(id));
        for (const id of fresh) seen.add(id);
        const reads = await Promise.all(
          fresh.map(async (eventId) => {
            const planned = await store.generationOf(eventId);
            if (planned !== undefined && planned >= generation) return undefined;
            const [records, event] = await Promise.all([
              store.allStepRecords(eventId),
              readable(store, eventId),
            ]);
            if (event === UNREADABLE) {
              // As the workers: one with nothing left to re-plan is passed over, read or not.
              if ([...records.values()].some((r) => r.state === "scheduled"))
                tally.addUnreadable(eventId);
              return undefined;
            }
            if (!event) return undefined;
            const [past, order, floors, remembered] = await Promise.all([
              history.historyAt(eventId),
              orders.get(event.orderId),
              dueFloors(thankYous, event.customer.id, eventId, records, rules),
              // A step that would move within another purchase's cooldown is skipped, as workers do.
              hasCooldowns(rules) ? history.rememberedSteps(event.customer.id) : undefined,
            ]);
            return { eventId, event, records, past, order, floors, remembered };
          }),
        );
        // Planned in the walk's order, each against the steps the preview re-planned before it
        // in the place of what was remembered of their purchases: a worker re-plans them first
        // and remembers them, and a later purchase of the customer is held to them.
        const previews = reads.map((read) => {
          if (!read) return [];
          const { eventId, event, records, past, order, floors, remembered } = read;
          const mine = replanned.get(event.customer.id);
          const recent =
            remembered &&
            recentOf([
              ...remembered.steps.filter((s) => s.eventId !== eventId && !mine?.has(s.eventId)),
              ...[...(mine ?? [])].flatMap(([of, steps]) => (of === eventId ? [] : steps)),
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
          if (remembered) {
            const kept = plan.steps.filter((s) => s.action === "keep" || s.action === "move");
            const steps = cooldownSteps(rules, kept, (s) => ({
              kind: s.kind as StepKind,
              dueAt: s.dueAt,
            })).flatMap((step) =>
              (["rule", "kind"] as const)
                .filter((by) => (by === "rule" ? step.byRule : step.byKind))
                .map((by) => ({
                  by,
                  name: by === "rule" ? step.ruleId : step.kind,
                  at: step.dueAt,
                  eventId,
                  stepId: step.stepId,
                })),
            );
            // As remember-steps.lua writes them: each step's entry in the place of its own (and of
            // its rule's or kind's entry of the form before step ids); the other entries of the
            // steps it re-planned go (a step it ended, a kind a step no longer has), and those of
            // the purchase's other steps (ended before: sent, refunded) stay as they were.
            const rewritten = new Set(
              steps.flatMap((step) => [fieldOf(step), fieldOf({ ...step, stepId: undefined })]),
            );
            const decided = new Set(plan.steps.map((step) => step.stepId));
            const customer = mine ?? new Map<string, RememberedStep[]>();
            customer.set(eventId, [
              ...remembered.steps.filter(
                (step) =>
                  step.eventId === eventId &&
                  !rewritten.has(fieldOf(step)) &&
                  (step.stepId === undefined || !decided.has(step.stepId)),
              ),
              ...steps,
            ]);
            replanned.set(event.customer.id, customer);
          }
          return plan.steps.map((step) => ({
            ruleId: step.ruleId,
            action: step.action,
            shiftMs: step.dueAt - step.fromDueAt,
            ...(step.reason && { code: step.reason.code }),
          }));
        });
        for (const step of previews.flat()) tally.add(step);
        if (count < 1_000) break;
        offset += count;
      }
    }
    if (buckets.length < 100) return;
    after = buckets[buckets.length - 1] ?? after;
  }
}
