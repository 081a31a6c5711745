/**
 * How a purchase's coalescing thank-you is filed with the customer's open group, as the store's
 * join-thank-you.lua does it, for the simulation (which has no Redis): the worker's rules in one
 * pure function. The first purchase leads; later ones within its window join until its thank-you
 * goes out (the group closes) or it lists `maxMembers` others; an older purchase arriving late
 * never takes over, and neither does a later one while the leader's thank-you has not gone.
 */

/** A coalesced thank-you's group is kept until its thank-you is surely sent: due, grace and a day. */
const GROUP_SLACK_MS = 24 * 3600 * 1000;

/**
 * How long after `now` a customer's thank-you group is kept for a thank-you due at `dueAt` with
 * `graceMs` of grace (intake's join-thank-you.lua keeps it at least as long as its filings): the
 * worker's and the simulation's one rule.
 */
export function groupKeptForMs(dueAt: number, now: number, graceMs: number): number {
  return dueAt - now + graceMs + GROUP_SLACK_MS;
}

/** A customer's open group as the simulation keeps it. */
export interface ThankYouGroup {
  /** The leading purchase's time (epoch ms). */
  readonly start: number;
  /** Its window's end: start plus the rule's coalesce. */
  readonly until: number;
  /** When the leader's thank-you is due: from then on the group is closed. */
  readonly closesAt: number;
  /** Purchases that joined. */
  readonly members: number;
}

export type GroupFiling = "lead" | "joined" | "alone";

export function fileThankYou(
  group: ThankYouGroup | undefined,
  purchasedAt: number,
  arrivedAt: number,
  windowMs: number,
  maxMembers: number,
): GroupFiling {
  if (!group) return "lead";
  const closed = arrivedAt >= group.closesAt;
  if (purchasedAt < group.until && purchasedAt > group.start - windowMs) {
    return closed || group.members >= maxMembers ? "alone" : "joined";
  }
  // An older purchase arriving late, or a later one while the group's thank-you still waits (for
  // the morning, say): on its own, and the open group stays (it is never replaced).
  return purchasedAt <= group.start - windowMs || !closed ? "alone" : "lead";
}
