/**
 * Do check-ins pay their way? Customers whose check-in went out are compared with customers who
 * were due one but did not get it for a reason that says nothing about them as buyers: no
 * consent, opted out, a frequency cap, the channel's budget. Who falls in which group, and when
 * a group is big enough to compare.
 */

/** The two groups compared: check-in sent, or due but skipped. */
export type CheckInGroup = "sent" | "skipped";

/** How one purchase's check-in ended, for the comparison. */
export interface CheckInOutcome {
  readonly group: CheckInGroup;
  /** The skip's reason code (`no-consent`); absent for a sent check-in. */
  readonly code?: string;
}

/**
 * Skip codes that put a customer due a check-in in the comparison group. Other skips (no phone
 * number, past its grace period, a refund) are not "eligible but skipped" and stay out.
 */
export const COMPARED_SKIPS: ReadonlySet<string> = new Set([
  "no-consent",
  "opted-out",
  "capped",
  "budget-reached",
]);

/** A group of fewer customers than this is too small for its rate to mean much. */
export const SMALLEST_COMPARED_GROUP = 20;

/** The comparison group a step's outcome puts its customer in; undefined when none. */
export function checkInOutcomeOf(
  kind: string,
  outcome: "sent" | "skipped",
  code?: string,
): CheckInOutcome | undefined {
  if (kind !== "check-in") return undefined;
  if (outcome === "sent") return { group: "sent" };
  return code !== undefined && COMPARED_SKIPS.has(code) ? { group: "skipped", code } : undefined;
}
