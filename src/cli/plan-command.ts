import { DateTime } from "luxon";
import { loadConfig } from "../config/load-config.js";
import { describeProblems, type PurchaseCompleted, parseEvent } from "../domain/events.js";
import { type Plan, planFollowUps } from "../domain/planner.js";
import type { RuleSet } from "../domain/rules.js";
import { countSmsSegments } from "../domain/sms-segments.js";
import { formatMicros } from "../domain/spend.js";
import { renderPlanTable, type StepCost } from "../reports/plan-table.js";
import { createMessageComposer } from "../templates/compose-message.js";
import type { TemplateSet } from "../templates/template-set.js";
import { loadRulesForCommand } from "./check-command.js";
import { CommandError, type CommandIo, EXIT, namesOffset, parseJsonText, readInput } from "./io.js";
import { jsonOutput, terminalText } from "./operator-text.js";
import { stepCost, stepMeasure } from "./step-measure.js";

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
  // Costs need the templates (an SMS's segments); a plan of the rules alone goes without them.
  const loaded = await loadConfig(options.config);
  const templates = loaded.ok ? loaded.config.templates : undefined;
  if (!templates && rules.rules.some((rule) => rule.steps.some((step) => step.channel === "sms")))
    io.err(
      `note: the templates in ${options.config} are missing or invalid, so SMS segments and costs are not shown; \`followups check\` says why\n`,
    );
  const event = readPurchase(parseJsonText(await readInput(file), file), file, now);
  const plan = planFollowUps(
    event,
    rules,
    { previousPurchases: options.previousPurchases ?? 0 },
    now,
  );
  const costs = await planCosts(event, plan, rules, templates);
  io.out(
    options.json
      ? jsonOutput(planJson(plan, costs), 2)
      : terminalText(renderPlanTable(plan, costs)),
  );
  return EXIT.ok;
}

/** Discount codes in a plan's rendering are as long as real ones; their letters do not matter. */
const PLAN_DISCOUNT_SECRET = "plan-only-not-a-real-discount-secret";

/**
 * What each step costs: an SMS's segments as the first text to the number (with the opt-out
 * line) and their price, a call's price for `prices.callMinutes`; email is not priced.
 */
async function planCosts(
  event: PurchaseCompleted,
  plan: Plan,
  rules: RuleSet,
  templates: TemplateSet | undefined,
): Promise<Map<string, StepCost>> {
  const measure =
    templates &&
    stepMeasure(
      rules,
      createMessageComposer(() => templates, {
        discountSecret: PLAN_DISCOUNT_SECRET,
        renderClock: "cpu",
      }),
    );
  const costs = new Map<string, StepCost>();
  for (const step of plan.steps) {
    // Every step is rendered as the worker would, so a template that fails for this purchase shows.
    const rendered = measure ? await measure.render(event, plan, step, true) : null;
    const segments =
      step.channel === "sms" && rendered?.ok ? countSmsSegments(rendered.message.text) : null;
    const micros = stepCost(rules, event, step, segments);
    costs.set(step.stepId, {
      segments,
      cost: micros === null ? null : formatMicros(micros, rules.defaults.currency),
      ...(step.channel === "voice" && { minutes: rules.spend.estimatedCallMinutes }),
      currency: rules.defaults.currency,
      ...(rendered?.ok === false && {
        renderError: `template ${step.template} failed to render: ${rendered.error}`,
      }),
    });
  }
  return costs;
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

/** Reads `--now`, or the clock when it is absent (the only clock read on this path). */
export function parseNow(text: string | undefined): DateTime {
  if (text === undefined) return DateTime.utc();
  const now = DateTime.fromISO(text, { setZone: true });
  if (!now.isValid || !namesOffset(text)) {
    throw new CommandError(
      `--now: expected an ISO-8601 date-time with an offset, such as 2026-11-23T09:00:00Z, got ${JSON.stringify(text)}`,
      EXIT.usage,
    );
  }
  return now;
}

/** The documented `--json` shape, exactly: publishers' scripts read it. */
export function planJson(plan: Plan, costs?: ReadonlyMap<string, StepCost>) {
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
      ...(costs && {
        segments: costs.get(s.stepId)?.segments ?? null,
        cost: costs.get(s.stepId)?.cost ?? null,
      }),
      ...(costs?.get(s.stepId)?.renderError && {
        renderError: costs.get(s.stepId)?.renderError,
      }),
    })),
    skipped: plan.skipped.map((s) => ({ ruleId: s.ruleId, kind: s.kind, reason: s.reason })),
  };
}
