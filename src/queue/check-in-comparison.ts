import type { DateTime } from "luxon";
import { checkInOutcomeOf } from "../domain/check-in-comparison.js";
import type { PurchaseCompleted } from "../domain/events.js";
import { type SkippedStep, stepTiming } from "../domain/planner.js";
import type { RuleSet } from "../domain/rules.js";
import { findStep } from "../domain/step-ref.js";
import {
  type CustomerHistoryStore,
  checkInsAnsweredBy,
  type PurchaseAttribution,
} from "../store/customer-history.js";
import type { DeliveryLedger } from "../store/delivery-ledger.js";

/**
 * The comparison of repeat purchases between customers who got a check-in and those who were due
 * one but skipped (domain/check-in-comparison.ts): delivery and intake note each check-in's
 * outcome, intake counts a purchase that came within the attribution window after one.
 */

const DAY_MS = 24 * 3600 * 1000;
/** A purchase arriving this long after its check-in's window closed no longer counts. */
const LATE_ARRIVAL_MS = DAY_MS;
/**
 * A counted return is remembered for the window and this, so a replayed purchase never counts
 * again while its check-in could still be answered (purchases may be dated up to a day ahead).
 */
const RETURN_RECEIPT_SLACK_MS = LATE_ARRIVAL_MS + DAY_MS;

/** What delivery knows of a check-in step that went out or was skipped at `at`. */
export interface CheckInNote {
  readonly customerId: string;
  readonly eventId: string;
  readonly kind: string;
  readonly outcome: "sent" | "skipped";
  /** The skip's reason code. */
  readonly code?: string;
  readonly at: number;
}

/** Notes a step's outcome when it puts its customer in a comparison group; otherwise nothing. */
export async function noteCheckIn(
  history: Pick<CustomerHistoryStore, "rememberCheckIn">,
  rules: RuleSet,
  note: CheckInNote,
): Promise<void> {
  const outcome = checkInOutcomeOf(note.kind, note.outcome, note.code);
  if (!outcome) return;
  await history.rememberCheckIn(
    note.customerId,
    note.eventId,
    outcome,
    note.at,
    note.at,
    rules.attribution.window.toMillis(),
  );
}

/**
 * Notes the check-ins the planner skipped for consent or an opt-out, at the time they would have
 * gone out (months after the purchase, as a sent one): the two groups are then alike in when
 * their window runs. A step whose time cannot be planned (past due, no window) is left out.
 */
export async function noteSkippedCheckIns(
  event: PurchaseCompleted,
  skipped: readonly SkippedStep[],
  rules: RuleSet,
  now: DateTime,
  history: Pick<CustomerHistoryStore, "rememberCheckIn">,
): Promise<void> {
  for (const skip of skipped) {
    const outcome = checkInOutcomeOf(skip.kind ?? "", "skipped", skip.code);
    const found = outcome && skip.stepId ? findStep(rules, skip.stepId) : undefined;
    if (!outcome || !found) continue;
    const timing = stepTiming(event, found.step, rules, now);
    if (!timing.ok) continue;
    await history.rememberCheckIn(
      event.customer.id,
      event.id,
      outcome,
      timing.due.toMillis(),
      now.toMillis(),
      rules.attribution.window.toMillis(),
    );
  }
}

/**
 * Counts a purchase as a return for each of its customer's check-ins (sent or skipped) it came
 * within the attribution window after, once per check-in, into the check-in's own hour.
 */
export async function countReturnAfterCheckIns(
  event: PurchaseCompleted,
  remembered: PurchaseAttribution["checkIns"],
  deps: {
    readonly rules: () => RuleSet;
    readonly clock: () => DateTime;
    readonly ledger: Pick<DeliveryLedger, "countCheckInReturn">;
  },
): Promise<void> {
  const now = deps.clock().toMillis();
  const windowMs = deps.rules().attribution.window.toMillis();
  const answered = checkInsAnsweredBy(remembered, event.id, Date.parse(event.occurredAt), windowMs);
  for (const checkIn of answered) {
    if (now > checkIn.at + windowMs + LATE_ARRIVAL_MS) continue;
    await deps.ledger.countCheckInReturn(
      checkIn.purchase,
      checkIn,
      checkIn.at,
      now,
      windowMs + RETURN_RECEIPT_SLACK_MS,
    );
  }
}
