import type { RedisClient } from "./redis-client.js";
import { EMBEDDED_SCRIPTS } from "./scripts/embedded.js";

/**
 * Every Lua script of the store as a command on the connection, defined once per connection so
 * calls go by SHA (EVALSHA, loaded again by ioredis after a Redis restart). The scripts live in
 * src/store/scripts/*.lua, each with a header listing its KEYS, ARGV and replies.
 */
export interface StoreCommands {
  /** claim-step.lua */
  fuClaimStep(
    recordKey: string,
    purchaseKey: string,
    hourKey: string,
    dayKey: string,
    field: string,
    now: number,
    leaseMs: number,
    ledgerSpec: string,
    day: number,
  ): Promise<[number, string, number?]>;
  /** update-step.lua */
  fuUpdateStep(
    recordKey: string,
    purchaseKey: string,
    hourKey: string,
    dayKey: string,
    field: string,
    now: number,
    fromStates: string,
    patch: string,
    ledgerSpec: string,
    day: number,
    ...trim: [asRead: Buffer, kept: Buffer, summary: string] | []
  ): Promise<[number, string, number?]>;
  /** schedule-steps.lua: KEYS are the record, purchase, hour and one due day per step. */
  fuScheduleSteps(
    numberOfKeys: number,
    ...keysAndArgs: (string | number | Buffer)[]
  ): Promise<number>;
  /** claim-bucket.lua */
  fuClaimBucket(
    bucketKey: string,
    indexKey: string,
    leaseKey: string,
    bucket: number,
    token: string,
    leaseMs: number,
    maxCount: number,
  ): Promise<[number, string[]?]>;
  /** release-bucket.lua */
  fuReleaseBucket(
    bucketKey: string,
    indexKey: string,
    leaseKey: string,
    bucket: number,
    token: string,
    count: number,
  ): Promise<number>;
  /** replan-event.lua: KEYS are the record, purchase, hour, index and three per step. */
  fuReplanEvent(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
  /** opt-outs.lua: KEYS are the suppression lists asked. */
  fuOptOuts(numberOfKeys: number, ...keysAndArgs: string[]): Promise<number[]>;
  /** remember-customer.lua: KEYS are the address buckets. */
  fuRememberCustomer(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
  /** forget-customer.lua: KEYS are address buckets. */
  fuForgetCustomer(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
  /** sweep-bucket.lua */
  fuSweepBucket(bucketKey: string, now: number): Promise<number>;
  /** pack-address-index.lua */
  fuPackAddressIndex(
    legacyKey: string,
    bucketKey: string,
    entry: string,
    now: number,
    keepMs: number,
  ): Promise<number>;
  /** begin-walk.lua */
  fuBeginWalk(walkKey: string, generation: number): Promise<number>;
  /** rules-generation.lua */
  fuRulesGeneration(generationsKey: string, version: string): Promise<[number, number]>;
  /** requeue-step.lua */
  fuRequeueStep(
    recordKey: string,
    hourKey: string,
    dayKey: string,
    field: string,
    now: number,
    fromStates: string,
    ledgerSpec: string,
    counter: "rs" | "rq",
  ): Promise<[number, string]>;
  /** queue-alert.lua */
  fuQueueAlert(
    pendingKey: string,
    stateKey: string,
    replyId: string,
    now: number,
    windowMs: number,
    keepMs: number,
  ): Promise<[number, number]>;
  /** claim-alerts.lua */
  fuClaimAlerts(
    pendingKey: string,
    leaseKey: string,
    token: string,
    leaseMs: number,
  ): Promise<[1, string[]] | [0, number]>;
  /** finish-alerts.lua */
  fuFinishAlerts(
    pendingKey: string,
    leaseKey: string,
    token: string,
    ...replyIds: string[]
  ): Promise<number>;
  /** add-reply.lua */
  fuAddReply(
    recordKey: string,
    stepId: string,
    reply: string,
    messageKey?: string,
  ): Promise<[number, string]>;
  /** resolve-reply.lua */
  fuResolveReply(
    recordKey: string,
    stepId: string,
    n: number,
    resolution: string,
  ): Promise<[number, string]>;
  /** erase-event.lua */
  fuEraseEvent(recordKey: string, purchaseKey: string, stopReason: string): Promise<number>;
  /** replace-purchase.lua */
  fuReplacePurchase(
    recordKey: string,
    asRead: Buffer,
    kept: Buffer,
    summary: string,
    keepAtMostUntil?: number | "",
  ): Promise<number>;
  /** stop-event.lua */
  fuStopEvent(recordKey: string, reason: string, field?: string): Promise<number>;
  /** note-postponed.lua */
  fuNotePostponed(recordKey: string, field: string, until: number, code: string): Promise<number>;
  /** settle-sent.lua */
  fuSettleSent(
    recordKey: string,
    lastSentKey: string,
    field: string,
    lastSent: string,
    at: number,
    keepMs: number,
  ): Promise<number>;
  /** count-outcomes.lua */
  fuCountOutcomes(hourKey: string, keepMs: number, ...fields: string[]): Promise<null>;
  /** record-purchase.lua */
  fuRecordPurchase(
    recordKey: string,
    customerKey: string,
    erasedKey: string,
    lastSentKey: string,
    checkInsKey: string,
    occurredAt: string,
    keepCustomerMs: number,
    keepRecordMs: number,
    fingerprint: string,
    eventId: string,
    purchasedAt: number,
    orderHash?: string,
    phoneMember?: string,
    consent?: string,
  ): Promise<[number, string, number, string?, string[]?, number?]>;
  /** claim-event-id.lua */
  fuClaimEventId(recordKey: string, fingerprint: string, keepMs: number): Promise<number>;
  /** fold-counts.lua */
  fuFoldCounts(fromKey: string, toKey: string): Promise<number>;
  /**
   * link-purchase.lua: KEYS are the order, its bucket, the erasure marker, address buckets, then
   * any suppression lists; -1 when the customer was erased.
   */
  fuLinkPurchase(
    numberOfKeys: number,
    ...keysAndArgs: (string | number)[]
  ): Promise<[string[], number[]] | -1>;
  /** keep-order-link.lua: 1 when the link lasts until `until`, 0 when there is none. */
  fuKeepOrderLink(bucketKey: string, field: string, until: number, now: number): Promise<number>;
  /** read-order.lua: KEYS are the order, its bucket, then any suppression lists. */
  fuReadOrder(
    numberOfKeys: number,
    ...keysAndArgs: (string | number)[]
  ): Promise<[string[], number[]]>;
  /** record-refund.lua */
  fuRecordRefund(
    orderKey: string,
    linksKey: string,
    refundId: string,
    amount: string,
    keepMs: number,
    entry: string,
    now: number,
  ): Promise<string[]>;
  /** take-cap-slot.lua */
  fuTakeCapSlot(key: string, member: string, now: number, ...caps: number[]): Promise<number>;
  /** suppress.lua */
  fuSuppress(
    setKey: string,
    hourKey: string,
    keepHourMs: number,
    ledgerFields: string,
    marks: string,
    ...members: string[]
  ): Promise<number>;
  /** allow.lua: KEYS are the two suppression sets and the number's opt-out times. */
  fuAllow(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
  /** count-once.lua */
  fuCountOnce(
    receiptKey: string,
    hourKey: string,
    keepReceiptSeconds: number,
    keepHourMs: number,
    ...fields: string[]
  ): Promise<number>;
  /** claim-report-mark.lua */
  fuClaimReportMark(
    markKey: string,
    leaseKey: string,
    token: string,
    leaseMs: number,
    since: string,
    keepMs: number,
  ): Promise<[1, string] | [0, number]>;
  /** advance-report-mark.lua */
  fuAdvanceReportMark(
    markKey: string,
    leaseKey: string,
    until: string,
    keepMs: number,
    token: string,
  ): Promise<number>;
  /** count-first-outcome.lua */
  fuCountFirstOutcome(
    receiptKey: string,
    otherReceiptKey: string,
    hourKey: string,
    keepReceiptSeconds: number,
    keepHourMs: number,
    ...fields: string[]
  ): Promise<number>;
  /** note-sms-status.lua */
  fuNoteSmsStatus(
    recordKey: string,
    capWindowKey: string,
    failuresKey: string,
    lastSentKey: string,
    field: string,
    now: number,
    status: string,
    errorCode: number | "",
    messageSid: string,
    failedReason: string,
    capFollowUpId: string,
    stepRef: string,
    keepFailuresMs: number,
  ): Promise<[number, string, string?]>;
  /** keep-early-sms-status.lua */
  fuKeepEarlySmsStatus(
    referenceKey: string,
    earlyKey: string,
    status: string,
    keepMs: number,
    maxKept: number,
  ): Promise<number>;
  /** remember-sms.lua */
  fuRememberSms(
    referenceKey: string,
    earlyKey: string,
    reference: string,
    expiresAt: number,
  ): Promise<string[]>;
  /** note-dropped-purchase.lua */
  fuNoteDroppedPurchase(orderKey: string, eventId: string, at: number): Promise<number>;
  /** remember-latest-check-in.lua */
  fuRememberLatestCheckIn(latestKey: string, ref: string, expiresAt: number): Promise<number>;
  /** remember-check-in.lua */
  fuRememberCheckIn(
    checkInsKey: string,
    hourKey: string,
    purchaseHash: string,
    entry: string,
    field: string,
    keepHourMs: number,
    now: number,
    keepEntryMs: number,
    at: number,
  ): Promise<number>;
  /** redeem-code.lua */
  fuRedeemCode(
    codeKey: string,
    hourKey: string,
    now: number,
    orderId: string,
    keepHourMs: number,
    usedAt?: number,
  ): Promise<[number, string]>;
  /** join-thank-you.lua */
  fuJoinThankYou(
    historyKey: string,
    recordKey: string,
    legacyGroupKey: string,
    erasedKey: string,
    eventId: string,
    stepId: string,
    purchasedAt: number,
    windowMs: number,
    dueAt: number,
    keepMs: number,
    maxMembers: number,
    now: number,
  ): Promise<[string, string?, string?, string?]>;
  /** count-in-record.lua */
  fuCountInRecord(
    recordKey: string,
    hourKey: string,
    mark: string,
    keepHourMs: number,
    ...fields: string[]
  ): Promise<number>;
  /** revoke-code.lua */
  fuRevokeCode(codeKey: string, now: number): Promise<number>;
  /** note-code.lua */
  fuNoteCode(historyKey: string, codeHash: string, keepUntil: number, now: number): Promise<number>;
  /** remember-steps.lua */
  fuRememberSteps(
    recentKey: string,
    erasedKey: string,
    recordKey: string,
    purchasedAt: number,
    keepMs: number,
    eventId: string,
    pruneBefore: number,
    generation: number | "",
    checks: number,
    ...cooldownCountsThenReplannedStepsThenFieldsAndDueTimes: (string | number)[]
  ): Promise<number>;
  /** close-thank-you.lua */
  fuCloseThankYou(
    historyKey: string,
    legacyGroupKey: string,
    recordKey: string,
    eventId: string,
    now: number,
    stepId: string,
    listNone: "1" | "",
  ): Promise<string[]>;
  /** decide-joined-thank-you.lua */
  fuDecideJoinedThankYou(
    recordKey: string,
    legacyGroupKey: string,
    leaderRecordKey: string,
    historyKey: string,
    eventId: string,
    leaderEventId: string,
    graceMs: number | "",
    marginMs: number,
    now: number,
    leaseMs: number,
    stepId: string,
  ): Promise<[verdict: "coalesced" | "wait" | "own", detail?: string, listed?: string]>;
  /** leave-thank-you.lua */
  fuLeaveThankYou(
    recordKey: string,
    legacyGroupKey: string,
    eventId: string,
    leaderEventId: string,
  ): Promise<number>;
  /** add-spend.lua */
  fuAddSpend(
    monthKey: string,
    chargesKey: string,
    alertsKey: string,
    previousChargesKey: string,
    chargeId: string,
    costMicros: number,
    budgetMicros: number,
    enforce: 0 | 1,
    keepMs: number,
    ...thresholds: number[]
  ): Promise<number[]>;
  /** return-spend.lua */
  fuReturnSpend(monthKey: string, chargesKey: string, chargeId: string): Promise<number>;
  /** swap-call.lua: KEYS are the call's record and, when it names its call anew, the binding. */
  fuSwapCall(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
  /** adoptable-call.lua: KEYS are the bindings of the calls asked about; binds the one taken. */
  fuAdoptableCall(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
  /** take-rate-slot.lua */
  fuTakeRateSlot(
    key: string,
    nowUs: number | "",
    intervalUs: number,
    maxWaitUs: number,
    graceUs: number,
  ): Promise<[number, number]>;
}

/** Command name of each script file. */
const COMMAND_OF: Readonly<Record<keyof typeof EMBEDDED_SCRIPTS, keyof StoreCommands>> = {
  "claim-step": "fuClaimStep",
  "update-step": "fuUpdateStep",
  "schedule-steps": "fuScheduleSteps",
  "claim-bucket": "fuClaimBucket",
  "release-bucket": "fuReleaseBucket",
  "rules-generation": "fuRulesGeneration",
  "begin-walk": "fuBeginWalk",
  "remember-customer": "fuRememberCustomer",
  "link-purchase": "fuLinkPurchase",
  "keep-order-link": "fuKeepOrderLink",
  "forget-customer": "fuForgetCustomer",
  "pack-address-index": "fuPackAddressIndex",
  "sweep-bucket": "fuSweepBucket",
  "opt-outs": "fuOptOuts",
  "replan-event": "fuReplanEvent",
  "stop-event": "fuStopEvent",
  "note-postponed": "fuNotePostponed",
  "settle-sent": "fuSettleSent",
  "requeue-step": "fuRequeueStep",
  "erase-event": "fuEraseEvent",
  "replace-purchase": "fuReplacePurchase",
  "add-reply": "fuAddReply",
  "queue-alert": "fuQueueAlert",
  "claim-alerts": "fuClaimAlerts",
  "finish-alerts": "fuFinishAlerts",
  "resolve-reply": "fuResolveReply",
  "count-outcomes": "fuCountOutcomes",
  "record-purchase": "fuRecordPurchase",
  "read-order": "fuReadOrder",
  "record-refund": "fuRecordRefund",
  "note-dropped-purchase": "fuNoteDroppedPurchase",
  "note-sms-status": "fuNoteSmsStatus",
  "keep-early-sms-status": "fuKeepEarlySmsStatus",
  "remember-sms": "fuRememberSms",
  "take-cap-slot": "fuTakeCapSlot",
  "take-rate-slot": "fuTakeRateSlot",
  suppress: "fuSuppress",
  allow: "fuAllow",
  "claim-event-id": "fuClaimEventId",
  "count-once": "fuCountOnce",
  "advance-report-mark": "fuAdvanceReportMark",
  "claim-report-mark": "fuClaimReportMark",
  "count-first-outcome": "fuCountFirstOutcome",
  "count-in-record": "fuCountInRecord",
  "redeem-code": "fuRedeemCode",
  "revoke-code": "fuRevokeCode",
  "note-code": "fuNoteCode",
  "remember-check-in": "fuRememberCheckIn",
  "remember-latest-check-in": "fuRememberLatestCheckIn",
  "remember-steps": "fuRememberSteps",
  "join-thank-you": "fuJoinThankYou",
  "close-thank-you": "fuCloseThankYou",
  "decide-joined-thank-you": "fuDecideJoinedThankYou",
  "leave-thank-you": "fuLeaveThankYou",
  "add-spend": "fuAddSpend",
  "return-spend": "fuReturnSpend",
  "fold-counts": "fuFoldCounts",
  "swap-call": "fuSwapCall",
  "adoptable-call": "fuAdoptableCall",
};

const defined = new WeakSet<RedisClient>();

/** The connection with every store command defined on it (once, however often it is called). */
export function withStoreCommands(redis: RedisClient): RedisClient & StoreCommands {
  if (!defined.has(redis)) {
    for (const [file, script] of Object.entries(EMBEDDED_SCRIPTS)) {
      redis.defineCommand(COMMAND_OF[file as keyof typeof EMBEDDED_SCRIPTS], {
        lua: script.lua,
        ...(script.numberOfKeys !== undefined && { numberOfKeys: script.numberOfKeys }),
      });
    }
    defined.add(redis);
  }
  return redis as RedisClient & StoreCommands;
}
