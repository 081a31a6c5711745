import type { RuleSet } from "../domain/rules.js";
import {
  type BudgetAlert,
  formatMicros,
  type PricedChannel,
  spendMonthOf,
} from "../domain/spend.js";
import type { SpendLedger } from "../store/spend-ledger.js";

export interface SpendDeps {
  readonly spend: Pick<SpendLedger, "add" | "giveBack">;
  /** Queues the owners' email about a crossed threshold (80 %, 100 %). */
  readonly onBudgetAlert: (alert: BudgetAlert) => Promise<void>;
}

export type Charge =
  | { readonly charged: true; readonly month: string; readonly micros: number }
  | { readonly charged: false; readonly reason: string };

/**
 * Charges a message's cost to its channel's spend of the month, once per `chargeId` (a retried
 * send is not charged again). `purpose` given: the message has not gone yet and is refused
 * (nothing charged) when the budget is reached and it must respect it (marketing always,
 * transactional when the budget says `skip`); omitted: the cost is already incurred (a call that
 * ended) and is always charged. The first charge past 80 % and past 100 % alerts the owners.
 */
export async function chargeSpend(
  deps: SpendDeps,
  rules: RuleSet,
  charge: { channel: PricedChannel; id: string; micros: number },
  purpose: "transactional" | "marketing" | undefined,
  nowMs: number,
): Promise<Charge> {
  const { channel, id, micros } = charge;
  const budget = rules.spend.budgets[channel];
  const month = spendMonthOf(nowMs, rules.defaults.timezone);
  if (!budget && micros === 0) return { charged: true, month, micros };
  const enforce =
    budget !== undefined &&
    purpose !== undefined &&
    !(purpose === "transactional" && budget.transactional === "continue");
  const change = await deps.spend.add(channel, month, id, micros, budget?.monthlyMicros, enforce);
  if (!change.added) {
    const currency = rules.defaults.currency;
    return {
      charged: false,
      reason: `budget reached: ${channel} spend in ${month} is ${formatMicros(change.beforeMicros, currency)} of the ${formatMicros(budget?.monthlyMicros ?? 0, currency)} ${currency} budget`,
    };
  }
  for (const percent of change.crossed)
    await deps.onBudgetAlert({ channel, month, percent, spentMicros: change.afterMicros });
  // A retry of a message charged in the month before stays there (and is given back there).
  return { charged: true, month: change.month, micros };
}
