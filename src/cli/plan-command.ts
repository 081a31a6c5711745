import { DateTime } from "luxon";
import { describeProblems, type PurchaseCompleted, parseEvent } from "../domain/events.js";
import { type Plan, planFollowUps } from "../domain/planner.js";
import { renderPlanTable } from "../reports/plan-table.js";
import { loadRulesForCommand } from "./check-command.js";
import { CommandError, type CommandIo, EXIT, parseJsonText, readInput } from "./io.js";

export interface PlanOptions {
  readonly config: string;
  readonly now?: string;
  readonly json?: boolean;
  readonly previousPurchases?: number;
}

/** `followups plan EVENT.json`: what follow-ups this purchase would get, and exactly when. */
export async function runPlan(file: string, options: PlanOptions, io: CommandIo): Promise<number> {
  const now = parseNow(options.now);
  const rules = await loadRulesForCommand(options.config);
  const event = readPurchase(parseJsonText(await readInput(file), file), file, now);
  const plan = planFollowUps(
    event,
    rules,
    { previousPurchases: options.previousPurchases ?? 0 },
    now,
  );
  io.out(options.json ? `${JSON.stringify(planJson(plan), null, 2)}\n` : renderPlanTable(plan));
  return EXIT.ok;
}

/**
 * Validates a purchase for commands that only plan purchases; `type` may be left out. An
 * occurredAt more than a day after `now` is refused, as the intake would.
 */
export function readPurchase(input: unknown, source: string, now?: DateTime): PurchaseCompleted {
  const withType =
    input && typeof input === "object" && !Array.isArray(input) && !("type" in input)
      ? { type: "purchase.completed", ...input }
      : input;
  const result = parseEvent(withType, { now });
  if (!result.ok) {
    throw new CommandError(`${source}: invalid event\n${describeProblems(result.problems)}`);
  }
  if (result.event.type !== "purchase.completed") {
    throw new CommandError(
      `${source}: only purchase.completed events have follow-ups to plan, got ${result.event.type}`,
    );
  }
  return result.event;
}

/** A date-time that names its offset; without one, luxon would read it in the host's zone. */
const WITH_OFFSET = /T.*(?:Z|[+-]\d{2}(?::?\d{2})?)$/i;

/** Reads `--now`, or the clock when it is absent (the only clock read on this path). */
export function parseNow(text: string | undefined): DateTime {
  if (text === undefined) return DateTime.utc();
  const now = DateTime.fromISO(text, { setZone: true });
  if (!now.isValid || !WITH_OFFSET.test(text.trim())) {
    throw new CommandError(
      `--now: expected an ISO-8601 date-time with an offset, such as 2026-11-23T09:00:00Z, got ${JSON.stringify(text)}`,
      EXIT.usage,
    );
  }
  return now;
}

/** The documented `--json` shape, exactly: publishers' scripts read it. */
export function planJson(plan: Plan) {
  return {
    eventId: plan.eventId,
    steps: plan.steps.map((s) => ({
      stepId: s.stepId,
      ruleId: s.ruleId,
      kind: s.kind,
      channel: s.channel,
      template: s.template,
      dueAt: s.dueAt,
      localDueAt: s.localDueAt,
      ...(s.fallbackOf && { fallbackOf: s.fallbackOf }),
    })),
    skipped: plan.skipped.map((s) => ({ ruleId: s.ruleId, kind: s.kind, reason: s.reason })),
  };
}
