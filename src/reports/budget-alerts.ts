import type { Job, Queue } from "bullmq";
import type { DeliveryChannel, EmailMessage } from "../channels/channel.js";
import type { Owner, RuleSet } from "../domain/rules.js";
import {
  type BudgetAlert,
  formatMicros,
  isPricedChannel,
  type PricedChannel,
} from "../domain/spend.js";
import { plainText } from "../domain/unsafe-text.js";
import type { Logger } from "../logger.js";
import type { FollowUpMetrics } from "../metrics.js";
import { BUDGET_ALERT_JOB } from "../queue/names.js";
import type { SpendLedger } from "../store/spend-ledger.js";
import { ownerSchedulerId } from "./owner-reports.js";

const CHANNEL_WORDS: Record<PricedChannel, string> = { sms: "SMS", voice: "Voice call" };

/**
 * Queues one email per owner about a crossed budget threshold. The job id names the owner,
 * channel, month and percent, so each owner hears of each threshold once a month however many
 * workers saw it crossed.
 */
export async function queueBudgetAlerts(
  queue: Pick<Queue, "add">,
  owners: readonly Owner[],
  alert: BudgetAlert,
): Promise<void> {
  for (const owner of owners) {
    const ownerId = ownerSchedulerId(owner);
    await queue.add(
      BUDGET_ALERT_JOB,
      { owner: ownerId, ...alert },
      {
        jobId: `budget-${ownerId}-${alert.channel}-${alert.month}-${alert.percent}`,
        attempts: 6,
        backoff: { type: "exponential", delay: 60_000 },
      },
    );
  }
}

/** The email: which channel, how much of which month's budget is spent, and what happens now. */
export function budgetAlertEmail(
  owner: Pick<Owner, "email" | "name">,
  rules: RuleSet,
  alert: BudgetAlert,
  spentMicros: number,
  followUpId: string,
): EmailMessage {
  const budget = rules.spend.budgets[alert.channel];
  const currency = rules.defaults.currency;
  const words = CHANNEL_WORDS[alert.channel];
  const money = (micros: number) => `${formatMicros(micros, currency)} ${currency}`;
  const of = money(budget?.monthlyMicros ?? 0);
  // What the crossing charge brought the month to, and (a retried email goes later) what is
  // spent now; a job queued before the crossing spend was kept says only the latter.
  const crossedAt =
    alert.spentMicros === undefined
      ? `${money(spentMicros)} of ${of} in ${alert.month}`
      : `${money(alert.spentMicros)} of ${of} in ${alert.month}${
          spentMicros > alert.spentMicros ? ` (${money(spentMicros)} by now)` : ""
        }`;
  const reached = alert.percent >= 100;
  const next = reached
    ? [
        `From now until the end of ${alert.month}, marketing ${words} follow-ups are skipped (reason "budget reached").`,
        budget?.transactional === "skip"
          ? "Check-ins and other transactional ones are skipped too (budget.transactional: skip)."
          : "Check-ins and other transactional ones still go out (budget.transactional: continue).",
        `To send more, raise budget.${alert.channel}.monthly in the rules.`,
      ]
    : [
        `At 100% marketing ${words} follow-ups stop until the month ends.`,
        `To avoid that, raise budget.${alert.channel}.monthly in the rules.`,
      ];
  const text = [
    `Hello ${plainText(owner.name)},`,
    "",
    `${words} follow-ups have used ${alert.percent}% of this month's budget: ${crossedAt}.`,
    ...next,
    "",
    `${plainText(rules.shopName)} follow-ups`,
    "",
  ].join("\n");
  return {
    channel: "email",
    followUpId,
    to: owner.email,
    subject: `${rules.shopName}: ${words} spend at ${alert.percent}% of the ${alert.month} budget`,
    text,
  };
}

export interface BudgetAlertDeps {
  readonly rules: () => RuleSet;
  readonly spend: Pick<SpendLedger, "spent">;
  readonly email: Pick<DeliveryChannel, "send">;
  readonly logger: Logger;
  readonly metrics: FollowUpMetrics;
}

/** Sends one owner the budget email of a job; throws on a failed send so BullMQ retries it. */
export function createBudgetAlertProcessor(deps: BudgetAlertDeps) {
  return async (job: Job): Promise<{ sent: string } | { skipped: string }> => {
    const {
      owner: ownerId,
      channel,
      month,
      percent,
      spentMicros,
    } = job.data as Record<string, unknown>;
    const rules = deps.rules();
    const owner = rules.owners.find((o) => ownerSchedulerId(o) === ownerId);
    if (!owner) return { skipped: "owner no longer in the rules" };
    if (typeof channel !== "string" || !isPricedChannel(channel as never))
      return { skipped: "not a priced channel" };
    const alert: BudgetAlert = {
      channel: channel as PricedChannel,
      month: String(month),
      percent: Number(percent),
      ...(typeof spentMicros === "number" && { spentMicros }),
    };
    if (!rules.spend.budgets[alert.channel]) return { skipped: "no budget for the channel" };
    const spent = await deps.spend.spent(alert.channel, alert.month);
    const result = await deps.email.send(
      budgetAlertEmail(owner, rules, alert, spent, String(job.id ?? "budget")),
    );
    if (!result.ok) {
      deps.metrics.alertsFailed.inc();
      deps.logger.warn(
        { owner: ownerId, code: result.error.code, attempt: job.attemptsMade + 1 },
        "budget alert failed; will retry",
      );
      throw new Error(`budget alert not sent: ${result.error.code}`);
    }
    deps.metrics.alertsSent.inc();
    deps.logger.info({ owner: ownerId, channel, month, percent }, "budget alert sent");
    return { sent: result.id };
  };
}
