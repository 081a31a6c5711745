import { DateTime } from "luxon";
import type { Plan } from "../domain/planner.js";
import { formatTable } from "./text-table.js";

/** What a step costs, as `plan` shows it: SMS segments, call minutes, price in the default currency. */
export interface StepCost {
  /** SMS only: segments as the first text to the number (with the opt-out line). */
  readonly segments: number | null;
  /** Voice only: the minutes a call is assumed to last (`prices.callMinutes`). */
  readonly minutes?: number;
  /** Decimal in `currency`; null when not priced (email, or no price for the number's country). */
  readonly cost: string | null;
  readonly currency: string;
  /** The template failed to render for this purchase: the worker would fail the step. */
  readonly renderError?: string;
}

function describeCost(cost: StepCost | undefined): string {
  if (!cost) return "-";
  if (cost.renderError !== undefined) return "fails to render (see below)";
  const units =
    cost.segments !== null
      ? `${cost.segments} segment${cost.segments === 1 ? "" : "s"}`
      : cost.minutes !== undefined
        ? `${cost.minutes} min (est.)`
        : "";
  const price = cost.cost === null ? (units ? "not priced" : "-") : `${cost.cost} ${cost.currency}`;
  return units ? `${units}, ${price}` : price;
}

/**
 * The plan as `followups plan` prints it (and the console shows it): a table per part. With
 * `costs`, a column says what each step costs.
 */
export function renderPlanTable(plan: Plan, costs?: ReadonlyMap<string, StepCost>): string {
  const head =
    `event ${plan.eventId}, order ${plan.orderId}, customer ${plan.customerId}\n` +
    `time zone ${plan.timezone} (from the ${plan.timezoneSource}), rules version ${plan.rulesVersion}\n\n`;
  const steps =
    plan.steps.length === 0
      ? "No follow-ups planned.\n"
      : formatTable(
          [
            "STEP",
            "KIND",
            "CHANNEL",
            "TEMPLATE",
            "DUE (UTC)",
            "LOCAL DUE",
            ...(costs ? ["COST"] : []),
          ],
          plan.steps.map((s) => [
            s.stepId,
            s.kind,
            s.fallbackOf ? `${s.channel} if ${s.fallbackOf} is not answered` : s.channel,
            s.template,
            s.dueAt,
            DateTime.fromISO(s.localDueAt, { setZone: true })
              .setZone(plan.timezone)
              .toFormat("ccc d LLL yyyy HH:mm ZZZZ"),
            ...(costs ? [describeCost(costs.get(s.stepId))] : []),
          ]),
        );
  const skipped =
    plan.skipped.length === 0
      ? ""
      : `\nSkipped:\n${formatTable(
          ["RULE", "KIND", "REASON"],
          plan.skipped.map((s) => [s.ruleId ?? "-", s.kind ?? "-", s.reason]),
        )}`;
  const failing = plan.steps.flatMap((s) => {
    const error = costs?.get(s.stepId)?.renderError;
    return error === undefined ? [] : [`WARNING: ${s.stepId} would fail at send time: ${error}\n`];
  });
  return head + steps + (failing.length > 0 ? `\n${failing.join("")}` : "") + skipped;
}
