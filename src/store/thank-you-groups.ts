import { type Scope, StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";
import { readStepRecord, type StepRecord } from "./step-record.js";

/** At most this many purchases join one thank-you (it lists one more: the first); later ones get their own. */
export const MAX_JOINED = 9;

/** How long a purchase's filing is remembered, so a re-published event is filed the same way. */
export const FILINGS_KEEP_MS = 7 * 24 * 3600 * 1000;

/** How a purchase's coalescing thank-you was filed. */
export type ThankYouFiling =
  | { readonly role: "lead" }
  | { readonly role: "alone" }
  | {
      readonly role: "joined";
      readonly leaderEventId: string;
      readonly leaderStepId: string;
      /** When the leader's thank-you is due (epoch ms). */
      readonly leaderDueAt: number;
    };

/**
 * One thank-you for a customer's purchases within a rule's `coalesce` window. The first purchase
 * leads a group; later ones join it until the leader's thank-you goes out (it closes the group and
 * lists every member's order). A joined purchase keeps a thank-you of its own, due after the
 * leader's: it is skipped (`coalesced`) once the leader's went out, and sent after all when the
 * leader's never went (refunded, skipped, failed), so no purchase goes unthanked. Only event ids
 * and times are kept: the group in the customer's history (no key of its own), each purchase's
 * filing in its event record (scripts/lib/thank-you-group.lua). Groups and filings that key layout
 * 4 and before kept in a key per customer (`ty`) are read, and a group moved, where they are.
 */
export class ThankYouGroups {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, scope: Scope) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(scope);
  }

  /**
   * Files the purchase: leads, joins or stays alone (join-thank-you.lua); repeatable. Files
   * nothing when `erasureKey` (CustomerHistoryStore.erasureKey) says the customer was erased
   * after the purchase.
   */
  async file(
    customerId: string,
    purchase: { eventId: string; stepId: string; purchasedAt: number; dueAt: number },
    windowMs: number,
    keepMs: number,
    erasureKey: string,
    now = Date.now(),
  ): Promise<ThankYouFiling | { readonly role: "erased" }> {
    const [role, leaderEventId, leaderStepId, leaderDue] = await this.redis.fuJoinThankYou(
      this.keys.customerHistory(customerId),
      this.keys.eventRecord(purchase.eventId),
      this.keys.thankYouGroup(customerId),
      erasureKey,
      purchase.eventId,
      purchase.stepId,
      purchase.purchasedAt,
      windowMs,
      purchase.dueAt,
      Math.max(FILINGS_KEEP_MS, Math.ceil(keepMs)),
      MAX_JOINED,
      now,
    );
    if (role === "joined" && leaderEventId && leaderStepId)
      return { role, leaderEventId, leaderStepId, leaderDueAt: Number(leaderDue) };
    return { role: role === "lead" || role === "erased" ? role : "alone" };
  }

  /** How the purchase was filed, if it joined or stayed alone (a thank-you that falls due asks). */
  async filingOf(customerId: string, eventId: string): Promise<ThankYouFiling | undefined> {
    // One round trip: the record, else (filed by key layout 4 or before) the older group key.
    const replies =
      (await this.redis
        .pipeline()
        .hget(this.keys.eventRecord(eventId), "ty")
        .hget(this.keys.thankYouGroup(customerId), `f:${eventId}`)
        .exec()) ?? [];
    for (const [error] of replies) if (error) throw error;
    const filed = (replies[0]?.[1] ?? replies[1]?.[1]) as string | null | undefined;
    return typeof filed === "string" ? filingFrom(filed) : undefined;
  }

  /**
   * Closes the group as its leader's thank-you (`stepId`) goes out; the events that joined it,
   * oldest first (none once the group has ended: kept as long as its filings need,
   * FILINGS_KEEP_MS at least; none with `listNone`, when no rule coalesces as it goes: they get
   * their own). What it answers a leader is kept in its record, an empty list too: closing again
   * answers the same, and decide() skips only a purchase that it listed.
   */
  async close(
    customerId: string,
    leaderEventId: string,
    now = Date.now(),
    stepId = "",
    listNone = false,
  ): Promise<string[]> {
    return this.redis.fuCloseThankYou(
      this.keys.customerHistory(customerId),
      this.keys.thankYouGroup(customerId),
      this.keys.eventRecord(leaderEventId),
      leaderEventId,
      now,
      stepId,
      listNone ? "1" : "",
    );
  }

  /**
   * What becomes of the purchase's own thank-you, when it joined an earlier purchase's: skipped
   * (`coalesced`) once that one went out listing it, `wait` (with the leader's step record) while
   * that one may still go, else undefined (it leads, stands alone, or was not thanked for: it is
   * filed alone then, so a later retry of the leader's leaves it out). `lost` when it stops
   * waiting on a leader's thank-you still scheduled past its grace end (its due time plus
   * `graceMs`, or its own grace end, plus `marginMs`): no job of it could send it any more;
   * `stuck` when it stops waiting on one still `sending` past that and its claim plus `leaseMs`
   * (and `marginMs`): its worker died mid-send and no run of its job took it over. `listed`: that
   * message listed this purchase, so this one's own is a possible duplicate (counted in the
   * record of its step `stepId` as it is decided). Without `graceMs` it waits however long. The
   * filing and the leader's thank-you
   * are read in one script (decide-joined-thank-you.lua): read apart, a leader that left it out
   * and went between the two reads had it skipped, never thanked for. `filed` is the purchase's
   * filing as its record holds it (FollowUpStore.sendView), when read already: then it is not
   * read again first.
   */
  async decide(
    customerId: string,
    eventId: string,
    options: {
      filed?: string;
      graceMs?: number;
      marginMs?: number;
      leaseMs?: number;
      stepId?: string;
      now?: number;
    } = {},
  ): Promise<
    | { readonly verdict: "coalesced"; readonly leaderEventId: string }
    | { readonly verdict: "wait"; readonly leaderEventId: string; readonly leader: StepRecord }
    | { readonly verdict: "lost"; readonly leaderEventId: string }
    | { readonly verdict: "stuck"; readonly leaderEventId: string; readonly listed: boolean }
    | undefined
  > {
    const filing =
      options.filed !== undefined
        ? filingFrom(options.filed)
        : await this.filingOf(customerId, eventId);
    if (filing?.role !== "joined") return undefined;
    const { leaderEventId } = filing;
    const [verdict, detail, listed] = await this.redis.fuDecideJoinedThankYou(
      this.keys.eventRecord(eventId),
      this.keys.thankYouGroup(customerId),
      this.keys.eventRecord(leaderEventId),
      this.keys.customerHistory(customerId),
      eventId,
      leaderEventId,
      options.graceMs ?? "",
      options.marginMs ?? 0,
      options.now ?? Date.now(),
      options.leaseMs ?? 0,
      options.stepId ?? "",
    );
    if (verdict === "coalesced") return { verdict, leaderEventId };
    if (verdict === "wait" && detail)
      return { verdict, leaderEventId, leader: readStepRecord(detail) };
    if (verdict === "own" && detail === "lost") return { verdict: "lost", leaderEventId };
    if (verdict === "own" && detail === "stuck")
      return { verdict: "stuck", leaderEventId, listed: listed === "listed" };
    return undefined;
  }

  /**
   * Files a purchase that joined the leader's group as standing alone (leave-thank-you.lua): the
   * leader's thank-you goes out without it, so its own thank-you is not skipped as thanked for.
   * Whether it changed (not when it was filed otherwise, or its record is gone).
   */
  async leave(customerId: string, eventId: string, leaderEventId: string): Promise<boolean> {
    return (
      (await this.redis.fuLeaveThankYou(
        this.keys.eventRecord(eventId),
        this.keys.thankYouGroup(customerId),
        eventId,
        leaderEventId,
      )) === 1
    );
  }
}

/** A filing as stored (`ty`: "lead", "alone" or "joined\n<lead>\n<step>\n<due>"). */
export function filingFrom(filed: string): ThankYouFiling {
  const [role, leaderEventId, leaderStepId, leaderDue] = filed.split("\n");
  if (role === "joined" && leaderEventId && leaderStepId)
    return { role, leaderEventId, leaderStepId, leaderDueAt: Number(leaderDue) };
  return { role: role === "lead" ? "lead" : "alone" };
}
