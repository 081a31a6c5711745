import { DelayedError, UnrecoverableError } from "bullmq";
import { beforeAll, describe, expect, it } from "vitest";
import type { SendResult } from "../../src/channels/channel.js";
import type { StatedConsent } from "../../src/domain/consent-timeline.js";
import type { CapAction, RuleSet } from "../../src/domain/rules.js";
import { createLogger } from "../../src/logger.js";
import { FollowUpMetrics } from "../../src/metrics.js";
import {
  createDeliveryProcessor,
  type DeliveryDeps,
  type DeliveryOutcome,
} from "../../src/queue/delivery-processor.js";
import { cappedBackoff } from "../../src/queue/retry-policy.js";
import type { ComposeInput, ComposeMessage } from "../../src/templates/compose-message.js";
import { toTemplateError } from "../../src/templates/template-set.js";
import { EVERY_DAY, instant, purchase, sendWindow, shippedRules } from "../support/fixtures.js";
import {
  type FakeJob,
  FixedRateLimiter,
  fakeJob,
  InMemoryCaps,
  InMemoryFollowUpStore,
  InMemorySuppressions,
  ordersWithoutRefunds,
  RecordingSmsReferences,
  ScriptedChannel,
  type SeedRecord,
} from "../support/in-memory-delivery.js";

/**
 * The delivery decision, one due follow-up at a time, against in-memory stores and scripted
 * channels: what the customer gets, what the step record says afterwards, and what BullMQ is told.
 *
 * The clock stands at Tuesday 2026-11-24 12:00 UTC; the shipped policy's send windows are opened
 * all day, so only the case under test decides. The purchase (evt-1, a television, customer cus-1
 * in London) is due an hour before now; its follow-up job is `fu-1`. Retries: 3 attempts, backoff
 * from 30 s with random() = 0.5 (22.5 s after attempt 1, 45 s after attempt 2). Send lease: 120 s.
 */

const NOW = "2026-11-24T12:00:00.000Z";
const DUE = "2026-11-24T11:00:00.000Z";
const NOW_MS = Date.parse(NOW);
const DUE_MS = Date.parse(DUE);
const LEASE_MS = 120_000;
const EVENT_ID = "evt-1";
const JOB_ID = "fu-1";
const CUSTOMER = "cus-1";
const THANK_YOU = "big-ticket.thank-you";
/** The earlier purchase whose thank-you a joined one waits behind. */
const LEADER_ID = "evt-0";
const CHECK_IN = "big-ticket.check-in";

let shipped: RuleSet;
beforeAll(async () => {
  shipped = await shippedRules();
});

/** The shipped rules with every window open, and the thank-you's action when capped as given. */
function openRules(whenCappedThankYou: CapAction): RuleSet {
  const allDay = sendWindow("00:00", "24:00", EVERY_DAY, false);
  return {
    ...shipped,
    sendWindows: { email: allDay, sms: allDay, voice: allDay },
    whenCapped: { ...shipped.whenCapped, "thank-you": whenCappedThankYou },
  };
}

interface Setup {
  stepId?: string;
  /** The step's record before the job runs; a scheduled one due at DUE unless given; null: none. */
  record?: SeedRecord | null;
  email?: SendResult[];
  sms?: SendResult[];
  /** The cap is reached for a follow-up without a slot, and frees up then. */
  capFreesAt?: string;
  whenCappedThankYou?: CapAction;
  composeFails?: string;
  /** What rendering throws, when not a plain error with composeFails's words. */
  composeThrows?: () => Error;
  /** The event was stopped (full refund) with this reason. */
  stoppedWith?: string;
  /** The stored purchase is gone (expired or scrubbed); the step record is still there. */
  purchaseGone?: boolean;
  /** The rules in force have lost the step's rule since it was planned. */
  ruleRemoved?: boolean;
  /** The purchase was planned under rules generation 2, newer than this worker's (1). */
  plannedUnderNewerRules?: boolean;
  /** The purchase's thank-you joined that of LEADER_ID, whose thank-you's record is this. */
  joinedLeader?: SeedRecord;
  /** How long before DUE the job was made, with that delay (an hour unless given). */
  jobMadeBeforeDueMs?: number;
  /** The worker's clock, when not NOW. */
  now?: string;
  /** Runs once as the job reads the opt-outs: what happens meanwhile elsewhere. */
  meanwhile?: (store: InMemoryFollowUpStore, suppressions: InMemorySuppressions) => Promise<void>;
  /**
   * Runs as the job is given its send slot (after the guard), before it waits for it; may change
   * the consent the customer's latest purchase stated (`consent.stated`).
   */
  whileWaitingForSlot?: (
    suppressions: InMemorySuppressions,
    consent: { stated: StatedConsent },
  ) => Promise<void>;
}

function world(setup: Setup = {}) {
  const stepId = setup.stepId ?? THANK_YOU;
  const event = purchase({
    id: EVENT_ID,
    items: [{ sku: "TV-1", name: "TV", category: "televisions", quantity: 1, unitPrice: "899.00" }],
  });
  const store = new InMemoryFollowUpStore();
  store.saveEvent(event);
  const planned = stepId === CHECK_IN ? { channel: "sms", kind: "check-in" } : undefined;
  if (setup.record !== null) {
    store.seed(
      EVENT_ID,
      stepId,
      setup.record ?? {
        state: "scheduled",
        dueAt: DUE_MS,
        channel: planned ? "sms" : "email",
        kind: planned ? "check-in" : "thank-you",
      },
    );
  }
  if (setup.stoppedWith) store.stopEvent(EVENT_ID, setup.stoppedWith);
  if (setup.joinedLeader) store.seed(LEADER_ID, THANK_YOU, setup.joinedLeader);
  if (setup.purchaseGone) store.forgetEvent(EVENT_ID);
  if (setup.plannedUnderNewerRules) store.plannedUnder(EVENT_ID, 2);
  const channels = {
    email: new ScriptedChannel(setup.email),
    sms: new ScriptedChannel(setup.sms),
    voice: new ScriptedChannel(),
  };
  const composed: ComposeInput[] = [];
  const compose: ComposeMessage = async (input) => {
    composed.push(input);
    if (setup.composeFails) throw new Error(setup.composeFails);
    if (setup.composeThrows) throw setup.composeThrows();
    const { event: e, step, followUpId } = input;
    return step.channel === "email"
      ? {
          channel: "email",
          followUpId,
          to: e.customer.email ?? "",
          subject: "Thank you",
          text: "Thanks!",
        }
      : { channel: step.channel, followUpId, to: e.customer.phone ?? "", text: "How is it?" };
  };
  const caps = new InMemoryCaps(
    setup.capFreesAt ? { freeAt: Date.parse(setup.capFreesAt) } : undefined,
  );
  const smsReferences = new RecordingSmsReferences();
  const suppressions = new InMemorySuppressions();
  const consent: { stated: StatedConsent } = { stated: {} };
  const rateLimiter = new FixedRateLimiter({ granted: true, waitMs: 0 }, async () =>
    setup.whileWaitingForSlot?.(suppressions, consent),
  );
  const revokedCodes: string[] = [];
  const checkInsForgotten: string[] = [];
  const metrics = new FollowUpMetrics();
  const open = openRules(setup.whenCappedThankYou ?? "skip");
  const rules: RuleSet = setup.ruleRemoved
    ? { ...open, rules: open.rules.filter((rule) => rule.id !== "big-ticket") }
    : open;
  const deps: DeliveryDeps = {
    shard: 0,
    rules: () => rules,
    compose,
    channels,
    store,
    smsReferences,
    suppressions,
    calls: {
      prepare: async () => {},
      bind: async () => {},
      forget: async () => {},
      earlierAttempt: async () => undefined,
      adoptable: async () => undefined,
    },
    codes: {
      issue: async () => {},
      revokeByHash: async (codeHash) => {
        revokedCodes.push(codeHash);
        return true;
      },
    },
    thankYous: {
      close: async () => [],
      filingOf: async () =>
        setup.joinedLeader && {
          role: "joined" as const,
          leaderEventId: LEADER_ID,
          leaderStepId: THANK_YOU,
          leaderDueAt: setup.joinedLeader.dueAt,
        },
      leave: async () => false,
      // As decide-joined-thank-you.lua reads the leader's thank-you (one it closed lists this one).
      decide: async () => {
        if (!setup.joinedLeader) return undefined;
        const leader = (await store.stepRecords(LEADER_ID, [THANK_YOU])).get(THANK_YOU);
        if (leader?.state === "sent") return { verdict: "coalesced", leaderEventId: LEADER_ID };
        if (leader?.state === "scheduled" || leader?.state === "sending")
          return { verdict: "wait", leaderEventId: LEADER_ID, leader };
        return undefined;
      },
    },
    orders: meanwhileOrders(ordersWithoutRefunds(suppressions), () =>
      setup.meanwhile?.(store, suppressions),
    ),
    spend: {
      spend: {
        add: async (_channel, month) => ({
          added: true,
          beforeMicros: 0,
          afterMicros: 0,
          crossed: [],
          month,
        }),
        giveBack: async () => {},
      },
      onBudgetAlert: async () => {},
    },
    history: {
      rememberCheckIn: async () => true,
      noteCode: async () => {},
      latestConsent: async () => consent.stated,
      forgetCheckIns: async (customerId) => {
        checkInsForgotten.push(customerId);
      },
    },
    caps,
    metrics,
    rateLimiter,
    retry: {
      maxAttempts: 3,
      delayMs: cappedBackoff(30_000, 3_600_000, () => 0.5),
      maxDelayMs: 3_600_000,
    },
    sendLeaseMs: LEASE_MS,
    logger: createLogger({ level: "silent", pretty: false }),
    clock: () => instant(setup.now ?? NOW),
    random: () => 0.5,
    rulesGeneration: () => 1,
  };
  const job = fakeJob({
    eventId: EVENT_ID,
    stepId,
    id: JOB_ID,
    timestamp: DUE_MS - (setup.jobMadeBeforeDueMs ?? 3_600_000),
    delay: setup.jobMadeBeforeDueMs ?? 3_600_000,
  });
  const process = createDeliveryProcessor(deps);
  return {
    stepId,
    store,
    channels,
    composed,
    caps,
    smsReferences,
    suppressions,
    metrics,
    rateLimiter,
    revokedCodes,
    checkInsForgotten,
    job,
    record: () => store.record(EVENT_ID, stepId),
    /** Runs the job once, as a BullMQ worker would, and says how it ended. */
    deliver: () => ending(process(job, "lock-token")),
    /** Times the job was moved back to the delayed set, as ISO instants. */
    delayedUntil: () => delayedTimes(job),
    /** Ledger counts the step's state changes carried. */
    counted: () => store.counted.map((change) => change.entry),
  };
}

/** The orders read, running `meanwhile` once before the first read of the opt-outs answers. */
function meanwhileOrders(
  orders: DeliveryDeps["orders"],
  meanwhile: () => Promise<void> | undefined,
): DeliveryDeps["orders"] {
  let ran = false;
  return {
    get: orders.get,
    getWithOptOuts: async (orderId, query) => {
      if (!ran) {
        ran = true;
        await meanwhile();
      }
      return orders.getWithOptOuts(orderId, query);
    },
  };
}

type Ending =
  | { readonly returned: DeliveryOutcome }
  | { readonly threw: "DelayedError" | "UnrecoverableError" | string; readonly message: string };

async function ending(run: Promise<DeliveryOutcome>): Promise<Ending> {
  try {
    return { returned: await run };
  } catch (error) {
    const type =
      error instanceof UnrecoverableError
        ? "UnrecoverableError"
        : error instanceof DelayedError
          ? "DelayedError"
          : `unexpected ${(error as Error).name}`;
    return { threw: type, message: (error as Error).message };
  }
}

function delayedTimes(job: FakeJob): string[] {
  return job.delayedUntil.map((at) => new Date(at).toISOString());
}

/** A counter's series as label sets and values. */
async function series(counter: {
  get(): Promise<{ values: readonly { value: number; labels: object }[] }>;
}): Promise<{ labels: object; value: number }[]> {
  return (await counter.get()).values.map(({ labels, value }) => ({ labels, value }));
}

const ok = (id: string): SendResult => ({ ok: true, id });

/** `call`, refused by Redis (a failover's READONLY) the first `times` times `matches` says so. */
function refusedAtFirst<A extends unknown[], R>(
  times: number,
  call: (...args: A) => Promise<R>,
  matches: (...args: A) => boolean = () => true,
): (...args: A) => Promise<R> {
  let refusals = times;
  return async (...args) => {
    if (matches(...args) && refusals-- > 0)
      throw new Error("READONLY You can't write against a read only replica.");
    return call(...args);
  };
}
const transient421: SendResult = {
  ok: false,
  error: { kind: "transient", code: "421", reason: "4.7.0 try again later" },
};
const emailSlot = { channel: "email", customerId: CUSTOMER, followUpId: JOB_ID };

describe("a due follow-up that the provider accepts", () => {
  it.each([
    {
      stepId: THANK_YOU,
      channel: "email",
      kind: "thank-you",
      to: "ana@example.com",
      id: "<m1@shop.example>",
      smsRefs: [],
    },
    {
      stepId: CHECK_IN,
      channel: "sms",
      kind: "check-in",
      to: "+442079460958",
      id: "SM0001",
      smsRefs: [
        {
          sid: "SM0001",
          recipientMember: "member:+442079460958",
          at: { eventId: EVENT_ID, stepId: CHECK_IN, shard: 0, kind: "check-in" },
          keepMs: 5_184_000_000,
        },
      ],
    },
  ])("$stepId goes out once by $channel to $to and is recorded sent", async (row) => {
    const w = world({ stepId: row.stepId, email: [ok(row.id)], sms: [ok(row.id)] });

    expect(await w.deliver()).toEqual({ returned: { outcome: "sent", id: row.id } });

    const channel = w.channels[row.channel as "email" | "sms"];
    expect(channel.sent.map((m) => [m.channel, m.to, m.followUpId])).toEqual([
      [row.channel, row.to, JOB_ID],
    ]);
    expect(w.record()).toEqual({
      state: "sent",
      changedAt: NOW_MS,
      dueAt: DUE_MS,
      attempts: 1,
      channel: row.channel,
      kind: row.kind,
      providerId: row.id,
      takeovers: 0,
      resends: 0,
      retries: 0,
    });
    expect(w.counted()).toEqual([
      { outcome: "sent", channel: row.channel, kind: row.kind, ruleId: "big-ticket" },
    ]);
    expect(w.smsReferences.remembered).toEqual(row.smsRefs);
    // A sent message keeps its place under the customer's frequency cap.
    expect(w.caps.released).toEqual([]);
    expect(w.caps.holds(row.channel as "email" | "sms", CUSTOMER, JOB_ID)).toBe(true);
    expect(w.delayedUntil()).toEqual([]);
    expect(await series(w.metrics.sent)).toEqual([
      { labels: { channel: row.channel, kind: row.kind }, value: 1 },
    ]);
    // The message was written for the time it was planned for, not for now.
    expect(w.composed.map((input) => input.dueAt)).toEqual([DUE_MS]);
  });
});

describe("a step without a record, its job made 30 days before it was due", () => {
  it("is due when its job was planned for, not when the job was made: sent, not skipped as late", async () => {
    const w = world({ record: null, jobMadeBeforeDueMs: 30 * 24 * 3_600_000 });
    expect(await w.deliver()).toMatchObject({ returned: { outcome: "sent" } });
    expect(w.channels.email.sent).toHaveLength(1);
  });
});

describe("a transient failure with attempts left", () => {
  it.each([
    { before: 0, after: 1, retryAt: "2026-11-24T12:00:22.500Z" },
    { before: 1, after: 2, retryAt: "2026-11-24T12:00:45.000Z" },
  ])(
    "after $before earlier attempts: back to scheduled with $after attempts, retried at $retryAt",
    async ({ before, after, retryAt }) => {
      const w = world({
        record: {
          state: "scheduled",
          dueAt: DUE_MS,
          attempts: before,
          channel: "email",
          kind: "thank-you",
        },
        email: [transient421],
      });

      expect(await w.deliver()).toEqual({ threw: "DelayedError", message: "transient failure" });

      expect(w.channels.email.sent).toHaveLength(1);
      expect(w.delayedUntil()).toEqual([retryAt]);
      expect(w.record()).toMatchObject({
        state: "scheduled",
        attempts: after,
        reason: { code: "transient 421", text: "4.7.0 try again later" },
        takeovers: 0,
        postponed: { until: Date.parse(retryAt), code: "retry" },
      });
      // Nothing is counted as failed, and the slot under the cap is kept for the retry.
      expect(w.counted()).toEqual([]);
      expect(w.suppressions.counted).toEqual([]);
      expect(await series(w.metrics.failed)).toEqual([]);
      expect(await series(w.metrics.retried)).toEqual([{ labels: { channel: "email" }, value: 1 }]);
      expect(await series(w.metrics.possibleDuplicates)).toEqual([]);
      expect(w.caps.released).toEqual([]);
      expect(w.caps.holds("email", CUSTOMER, JOB_ID)).toBe(true);
    },
  );
});

describe("a failure that ends the follow-up", () => {
  it.each([
    {
      what: "transient on the last of 3 attempts",
      attemptsBefore: 2,
      result: transient421,
      attempts: 3,
      reason: {
        code: "transient 421",
        text: "gave up after 3 attempts: 4.7.0 try again later",
      },
      message: "transient 421: gave up after 3 attempts: 4.7.0 try again later",
    },
    {
      what: "permanent, with attempts left",
      attemptsBefore: 0,
      result: {
        ok: false,
        error: { kind: "permanent", code: "550", reason: "5.1.1 mailbox unavailable" },
      } as SendResult,
      attempts: 1,
      reason: { code: "permanent 550", text: "5.1.1 mailbox unavailable" },
      message: "permanent 550: 5.1.1 mailbox unavailable",
    },
    {
      what: "misconfigured, with attempts left",
      attemptsBefore: 1,
      result: {
        ok: false,
        error: { kind: "misconfigured", code: "EAUTH", reason: "SMTP login rejected" },
      } as SendResult,
      attempts: 2,
      reason: { code: "misconfigured EAUTH", text: "SMTP login rejected" },
      message: "misconfigured EAUTH: SMTP login rejected",
    },
  ])("$what: failed at once with the reason, slot released", async (row) => {
    const w = world({
      record: {
        state: "scheduled",
        dueAt: DUE_MS,
        attempts: row.attemptsBefore,
        channel: "email",
        kind: "thank-you",
      },
      email: [row.result],
    });

    expect(await w.deliver()).toEqual({ threw: "UnrecoverableError", message: row.message });

    expect(w.channels.email.sent).toHaveLength(1);
    expect(w.delayedUntil()).toEqual([]);
    expect(w.record()).toMatchObject({
      state: "failed",
      changedAt: NOW_MS,
      attempts: row.attempts,
      reason: row.reason,
    });
    expect(w.counted()).toEqual([
      {
        outcome: "failed",
        channel: "email",
        kind: "thank-you",
        ruleId: "big-ticket",
        reason: row.reason.code,
      },
    ]);
    expect(w.caps.released).toEqual([emailSlot]);
    expect(w.caps.holds("email", CUSTOMER, JOB_ID)).toBe(false);
    expect(await series(w.metrics.failed)).toEqual([
      { labels: { channel: "email", kind: "thank-you", reason: row.reason.code }, value: 1 },
    ]);
    expect(await series(w.metrics.retried)).toEqual([]);
  });

  it("a template that fails to render: failed as `permanent render`, nothing sent", async () => {
    const w = world({ composeFails: "undefined variable: discount.code", email: [ok("never")] });

    expect(await w.deliver()).toEqual({
      threw: "UnrecoverableError",
      message:
        "permanent render: template thank-you failed to render: undefined variable: discount.code",
    });

    expect(w.channels.email.sent).toEqual([]);
    expect(w.record()).toMatchObject({
      state: "failed",
      reason: {
        code: "permanent render",
        text: "template thank-you failed to render: undefined variable: discount.code",
      },
    });
    expect(w.counted()).toEqual([
      {
        outcome: "failed",
        channel: "email",
        kind: "thank-you",
        ruleId: "big-ticket",
        reason: "permanent render",
      },
    ]);
    expect(w.caps.released).toEqual([emailSlot]);
    expect(w.delayedUntil()).toEqual([]);
  });
});

describe("a render that runs out of time (a busy machine: `check` passed the template)", () => {
  /** What liquid throws for a render over its time limit, as rendering at send time wraps it. */
  const renderOverTime = () =>
    toTemplateError(new Error("template render limit exceeded"), "thank-you", "thank-you.en.txt");

  it("with attempts left: back to scheduled and retried after the backoff, nothing sent", async () => {
    const w = world({ composeThrows: renderOverTime, email: [ok("never")] });

    expect(await w.deliver()).toEqual({ threw: "DelayedError", message: "transient failure" });

    expect(w.channels.email.sent).toEqual([]);
    expect(w.delayedUntil()).toEqual(["2026-11-24T12:00:22.500Z"]);
    expect(w.record()).toMatchObject({
      state: "scheduled",
      attempts: 1,
      reason: {
        code: "transient render-time",
        text: "template thank-you failed to render: template render limit exceeded",
      },
      postponed: { until: Date.parse("2026-11-24T12:00:22.500Z"), code: "retry" },
    });
    expect(w.counted()).toEqual([]);
    expect(await series(w.metrics.failed)).toEqual([]);
    expect(await series(w.metrics.retried)).toEqual([{ labels: { channel: "email" }, value: 1 }]);
  });

  it("on the last attempt: failed with the reason and how often it was tried", async () => {
    const w = world({
      record: {
        state: "scheduled",
        dueAt: DUE_MS,
        attempts: 2,
        channel: "email",
        kind: "thank-you",
      },
      composeThrows: renderOverTime,
      email: [ok("never")],
    });

    expect(await w.deliver()).toEqual({
      threw: "UnrecoverableError",
      message:
        "transient render-time: gave up after 3 attempts: template thank-you failed to render: template render limit exceeded",
    });
    expect(w.channels.email.sent).toEqual([]);
    expect(w.record()).toMatchObject({ state: "failed", attempts: 3 });
    expect(w.caps.released).toEqual([emailSlot]);
  });
});

describe("the customer's frequency cap is reached (frees up at 18:30)", () => {
  it("whenCapped skip: skipped as `capped`, nothing sent, counted in the ledger", async () => {
    const w = world({ capFreesAt: "2026-11-24T18:30:00Z", whenCappedThankYou: "skip" });

    expect(await w.deliver()).toEqual({ returned: { outcome: "skipped", code: "capped" } });

    expect(w.channels.email.sent).toEqual([]);
    expect(w.composed).toEqual([]);
    expect(w.record()).toMatchObject({
      state: "skipped",
      attempts: 0,
      reason: { code: "capped", text: "the customer's email frequency cap is reached" },
    });
    expect(w.counted()).toEqual([
      {
        outcome: "skipped",
        channel: "email",
        kind: "thank-you",
        ruleId: "big-ticket",
        reason: "capped",
      },
    ]);
    expect(w.delayedUntil()).toEqual([]);
    expect(w.caps.holds("email", CUSTOMER, JOB_ID)).toBe(false);
    expect(await series(w.metrics.skipped)).toEqual([
      { labels: { channel: "email", kind: "thank-you", reason: "capped" }, value: 1 },
    ]);
    // No send slot of the channel's rate is used up by a message that does not go.
    expect(w.rateLimiter.asked).toEqual([]);
  });

  it("whenCapped defer: moved to when the cap frees up, still scheduled, no attempt used", async () => {
    const w = world({ capFreesAt: "2026-11-24T18:30:00Z", whenCappedThankYou: "defer" });

    expect(await w.deliver()).toEqual({ threw: "DelayedError", message: "frequency cap" });

    expect(w.delayedUntil()).toEqual(["2026-11-24T18:30:00.000Z"]);
    expect(w.channels.email.sent).toEqual([]);
    // The due time stays the planned one; the record says when it is tried next, and why.
    expect(w.record()).toEqual({
      state: "scheduled",
      dueAt: DUE_MS,
      attempts: 0,
      channel: "email",
      kind: "thank-you",
      takeovers: 0,
      resends: 0,
      retries: 0,
      postponed: { until: Date.parse("2026-11-24T18:30:00Z"), code: "frequency-cap" },
    });
    expect(w.counted()).toEqual([]);
    expect(w.rateLimiter.asked).toEqual([]);
  });
});

describe("a thank-you that joined another purchase's, which has not gone yet", () => {
  const leader: SeedRecord = {
    state: "scheduled",
    dueAt: DUE_MS,
    channel: "email",
    kind: "thank-you",
  };

  it("looks again a minute on, not at once, while the leader's is overdue, and notes why", async () => {
    const w = world({ joinedLeader: leader });

    expect(await w.deliver()).toEqual({
      threw: "DelayedError",
      message: "the thank-you it joined has not gone yet",
    });

    expect(w.delayedUntil()).toEqual(["2026-11-24T12:01:00.000Z"]);
    expect(w.record()?.postponed).toEqual({
      until: Date.parse("2026-11-24T12:01:00Z"),
      code: "thank-you-joined",
    });
    expect(w.channels.email.sent).toEqual([]);
  });

  it("waits until a quarter of an hour after the leader's job, when that one waits past its due time", async () => {
    const w = world({ joinedLeader: leader });
    await w.store.notePostponed(LEADER_ID, THANK_YOU, Date.parse("2026-11-24T13:00:00Z"), "retry");

    await w.deliver();

    expect(w.delayedUntil()).toEqual(["2026-11-24T13:15:00.000Z"]);
    expect(w.record()?.postponed?.code).toBe("thank-you-joined");
  });
});

describe("a kind exempt from the caps (whenCapped exempt)", () => {
  it("is sent with the cap full, and takes no slot", async () => {
    const w = world({ capFreesAt: "2026-11-24T18:30:00Z", whenCappedThankYou: "exempt" });

    expect(await w.deliver()).toMatchObject({ returned: { outcome: "sent" } });

    expect(w.channels.email.sent).toHaveLength(1);
    expect(w.caps.taken).toEqual([]);
    expect(w.delayedUntil()).toEqual([]);
  });
});

describe("a step another worker was sending", () => {
  it.each([
    { since: "2026-11-24T11:58:00.000Z", note: "exactly one lease ago" },
    { since: "2026-11-24T11:00:00.000Z", note: "an hour ago" },
  ])("claimed at $since ($note): lease expired, taken over and sent", async ({ since }) => {
    const w = world({
      record: {
        state: "sending",
        dueAt: DUE_MS,
        changedAt: Date.parse(since),
        attempts: 0,
        channel: "email",
        kind: "thank-you",
      },
      email: [ok("<m2@shop.example>")],
    });

    expect(await w.deliver()).toEqual({
      returned: { outcome: "sent", id: "<m2@shop.example>" },
    });

    expect(w.channels.email.sent.map((m) => m.to)).toEqual(["ana@example.com"]);
    expect(w.record()).toMatchObject({
      state: "sent",
      attempts: 1,
      takeovers: 1,
      providerId: "<m2@shop.example>",
    });
    expect(await series(w.metrics.possibleDuplicates)).toEqual([
      { labels: { cause: "takeover" }, value: 1 },
    ]);
  });

  it.each([
    { since: "2026-11-24T11:58:00.001Z", until: "2026-11-24T12:00:00.001Z" },
    { since: "2026-11-24T11:59:30.000Z", until: "2026-11-24T12:01:30.000Z" },
  ])("claimed at $since: lease still running, postponed to $until", async ({ since, until }) => {
    const w = world({
      record: {
        state: "sending",
        dueAt: DUE_MS,
        changedAt: Date.parse(since),
        attempts: 0,
        channel: "email",
        kind: "thank-you",
      },
      email: [ok("never")],
    });

    expect(await w.deliver()).toEqual({
      threw: "DelayedError",
      message: "another worker is sending",
    });

    expect(w.delayedUntil()).toEqual([until]);
    expect(w.channels.email.sent).toEqual([]);
    expect(w.record()).toMatchObject({
      state: "sending",
      changedAt: Date.parse(since),
      takeovers: 0,
      attempts: 0,
    });
    // The other worker's send holds the slot; it is not given back from under it.
    expect(w.caps.released).toEqual([]);
    expect(await series(w.metrics.possibleDuplicates)).toEqual([]);
  });
});

describe("a job BullMQ handed out twice (a lost lock)", () => {
  it("does not skip the step from under the run that claimed it meanwhile: it waits for its lease", async () => {
    const w = world({
      stepId: CHECK_IN,
      sms: [ok("never")],
      // This run read the step scheduled; the other run claims it now and sends, and the
      // customer texts STOP meanwhile: this run would skip it as opted out.
      meanwhile: async (store, suppressions) => {
        expect((await store.claim(EVENT_ID, CHECK_IN, NOW_MS, LEASE_MS)).claimed).toBe(true);
        await suppressions.suppress("sms", { customerId: "cus-1" });
      },
    });
    expect(await w.deliver()).toEqual({
      threw: "DelayedError",
      message: "another worker is sending",
    });
    expect(w.delayedUntil()).toEqual([new Date(NOW_MS + LEASE_MS).toISOString()]);
    expect(w.record()).toMatchObject({ state: "sending", changedAt: NOW_MS });
    expect(w.channels.sms.sent).toEqual([]);
    // The sender's cap slot stays, and nothing is counted as skipped.
    expect(w.caps.released).toEqual([]);
    expect(w.counted()).toEqual([]);
    expect(await series(w.metrics.skipped)).toEqual([]);
  });
});

describe("an opt-out or a consent withdrawn while the send waits for its slot", () => {
  it("is read again right before the provider call: skipped as opted-out, nothing sent, its cap slot given back", async () => {
    const w = world({
      stepId: CHECK_IN,
      sms: [ok("never")],
      // Past the guard, the customer texts STOP while the send waits for the channel's rate.
      whileWaitingForSlot: async (suppressions) => {
        await suppressions.suppress("sms", { address: "+442079460958" });
      },
    });
    expect(await w.deliver()).toEqual({ returned: { outcome: "skipped", code: "opted-out" } });
    expect(w.channels.sms.sent).toEqual([]);
    expect(w.record()).toMatchObject({ state: "skipped", reason: { code: "opted-out" } });
    expect(w.caps.released).toEqual([{ channel: "sms", customerId: CUSTOMER, followUpId: JOB_ID }]);
    expect(w.counted()).toEqual([
      {
        outcome: "skipped",
        channel: "sms",
        kind: "check-in",
        ruleId: "big-ticket",
        reason: "opted-out",
      },
    ]);
  });

  it("so is a later purchase's withdrawal of consent: skipped as no-consent, nothing sent", async () => {
    const w = world({
      stepId: CHECK_IN,
      sms: [ok("never")],
      // A checkout that cleared the box for texts, taken in while the send waits for its slot.
      whileWaitingForSlot: async (_suppressions, consent) => {
        consent.stated = { sms: { given: false, at: NOW_MS } };
      },
    });
    expect(await w.deliver()).toEqual({ returned: { outcome: "skipped", code: "no-consent" } });
    expect(w.channels.sms.sent).toEqual([]);
    expect(w.record()).toMatchObject({
      state: "skipped",
      reason: { code: "no-consent", text: "customer declined sms messages" },
    });
    expect(w.caps.released).toEqual([{ channel: "sms", customerId: CUSTOMER, followUpId: JOB_ID }]);
  });
});

describe("a step whose purchase record is gone", () => {
  it("is skipped as event-missing and counted, so it leaves the pending count of its day", async () => {
    const w = world({ purchaseGone: true, email: [ok("never")] });
    expect(await w.deliver()).toEqual({
      returned: { outcome: "skipped", code: "event-missing" },
    });
    expect(w.channels.email.sent).toEqual([]);
    expect(w.record()).toMatchObject({
      state: "skipped",
      reason: { code: "event-missing", text: "the purchase record is gone" },
    });
    expect(w.counted()).toEqual([
      {
        outcome: "skipped",
        channel: "email",
        kind: "thank-you",
        ruleId: "big-ticket",
        reason: "event-missing",
      },
    ]);
    expect(await series(w.metrics.skipped)).toEqual([
      { labels: { channel: "email", kind: "thank-you", reason: "event-missing" }, value: 1 },
    ]);
  });
});

describe("a step whose rule the rules in force lack", () => {
  const ruleRemoved = {
    outcome: "skipped",
    channel: "email",
    kind: "thank-you",
    ruleId: "big-ticket",
    reason: "rule-removed",
  };

  it("is skipped as rule-removed when its purchase was planned under these rules or older", async () => {
    const w = world({ ruleRemoved: true, email: [ok("never")] });
    expect(await w.deliver()).toEqual({ returned: { outcome: "skipped", code: "rule-removed" } });
    expect(w.counted()).toEqual([ruleRemoved]);
  });

  it("is left for a worker with newer rules, when planned under them: half a minute when just due", async () => {
    const w = world({
      ruleRemoved: true,
      plannedUnderNewerRules: true,
      record: { state: "scheduled", dueAt: NOW_MS - 10_000, channel: "email", kind: "thank-you" },
      email: [ok("never")],
    });
    const before = w.record();
    expect(await w.deliver()).toEqual({
      threw: "DelayedError",
      message: "planned under newer rules than this worker's",
    });
    expect(w.delayedUntil()).toEqual(["2026-11-24T12:00:30.000Z"]);
    expect(w.record()).toEqual(before);
    expect(w.channels.email.sent).toEqual([]);
    expect(w.counted()).toEqual([]);
  });

  it("looks again after half as long as it is late, so that reverted rules cost a few looks", async () => {
    // Due an hour ago: half an hour on.
    const w = world({ ruleRemoved: true, plannedUnderNewerRules: true, email: [ok("never")] });
    expect(await w.deliver()).toMatchObject({ threw: "DelayedError" });
    expect(w.delayedUntil()).toEqual(["2026-11-24T12:30:00.000Z"]);
  });

  it("is skipped once its grace period is over, newer rules or not (rules reverted)", async () => {
    // Due three days ago: a thank-you's grace is two days.
    const w = world({
      ruleRemoved: true,
      plannedUnderNewerRules: true,
      record: {
        state: "scheduled",
        dueAt: DUE_MS - 3 * 86_400_000,
        channel: "email",
        kind: "thank-you",
      },
      email: [ok("never")],
    });
    expect(await w.deliver()).toEqual({ returned: { outcome: "skipped", code: "rule-removed" } });
    expect(w.counted()).toEqual([ruleRemoved]);
  });

  it("counts the grace period in the customer's zone, across a change of the clocks", async () => {
    // Due at noon in London on Saturday 24 October 2026, the clocks go back that night: two days
    // of grace end at noon GMT on Monday (12:00Z), 49 hours on, not 48 (11:00Z).
    const w = world({
      ruleRemoved: true,
      plannedUnderNewerRules: true,
      now: "2026-10-26T11:30:00.000Z",
      record: {
        state: "scheduled",
        dueAt: Date.parse("2026-10-24T11:00:00.000Z"),
        channel: "email",
        kind: "thank-you",
      },
      email: [ok("never")],
    });
    expect(await w.deliver()).toEqual({
      threw: "DelayedError",
      message: "planned under newer rules than this worker's",
    });
    expect(w.delayedUntil()).toEqual(["2026-10-26T12:00:00.000Z"]);
    expect(w.counted()).toEqual([]);
  });
});

describe("a job handed out again while its first worker still sends", () => {
  it("is postponed to the end of the lease before any check that could skip the step", async () => {
    const sending: SeedRecord = {
      state: "sending",
      dueAt: DUE_MS,
      changedAt: NOW_MS - 30_000,
      attempts: 0,
      channel: "email",
      kind: "thank-you",
    };
    // The rule is gone meanwhile: still the sender, not this job, decides what happens.
    const w = world({ record: sending, ruleRemoved: true, email: [ok("never")] });
    const before = w.record();
    expect(await w.deliver()).toEqual({
      threw: "DelayedError",
      message: "another worker is sending",
    });
    expect(w.delayedUntil()).toEqual(["2026-11-24T12:01:30.000Z"]);
    expect(w.record()).toEqual(before);
    expect(w.channels.email.sent).toEqual([]);
    expect(w.counted()).toEqual([]);
  });
});

describe("a redelivered job of a finished step", () => {
  it.each([
    { state: "sent" as const, providerId: "<m0@shop.example>" },
    { state: "failed" as const, reason: { code: "permanent 550", text: "no such user" } },
    { state: "skipped" as const, reason: { code: "capped", text: "cap reached" } },
    { state: "cancelled" as const, reason: { code: "refunded", text: "order refunded" } },
  ])(
    "$state: already handled, nothing sent, record untouched; a cap slot only a sent one keeps",
    async (finished) => {
      const seeded: SeedRecord = {
        dueAt: DUE_MS,
        changedAt: DUE_MS + 1_000,
        attempts: 1,
        channel: "email",
        kind: "thank-you",
        ...finished,
      };
      const w = world({ record: seeded, email: [ok("never")] });
      // The run that ended it took a slot, and (but for a sent one) failed before giving it back.
      w.caps.hold("email", CUSTOMER, JOB_ID);
      const before = w.record();

      expect(await w.deliver()).toEqual({
        returned: { outcome: "already-handled", state: finished.state },
      });

      expect(w.channels.email.sent).toEqual([]);
      expect(w.record()).toEqual(before);
      expect(w.caps.taken).toEqual([]);
      expect(w.caps.holds("email", CUSTOMER, JOB_ID)).toBe(finished.state === "sent");
      expect(w.counted()).toEqual([]);
      expect(w.delayedUntil()).toEqual([]);
    },
  );
});

describe("a transient failure after the message may have been handed over", () => {
  it("is retried, counted as a possible duplicate on the record, and the retry sends it", async () => {
    const w = world({
      email: [
        {
          ok: false,
          error: {
            kind: "transient",
            code: "ECONNECTION",
            reason: "connection closed after DATA",
            uncertain: true,
          },
        },
        ok("<m3@shop.example>"),
      ],
    });

    expect(await w.deliver()).toEqual({ threw: "DelayedError", message: "transient failure" });
    expect(w.delayedUntil()).toEqual(["2026-11-24T12:00:22.500Z"]);
    expect(w.record()).toMatchObject({
      state: "scheduled",
      attempts: 1,
      takeovers: 1,
      reason: { code: "transient ECONNECTION", text: "connection closed after DATA" },
    });
    expect(await series(w.metrics.possibleDuplicates)).toEqual([
      { labels: { cause: "uncertain-handover" }, value: 1 },
    ]);

    expect(await w.deliver()).toEqual({
      returned: { outcome: "sent", id: "<m3@shop.example>" },
    });
    expect(w.channels.email.sent).toHaveLength(2);
    expect(w.record()).toMatchObject({ state: "sent", attempts: 2, takeovers: 1 });
    // Sent: the record keeps no note of the wait.
    expect(w.store.storedForm(EVENT_ID, THANK_YOU)).not.toHaveProperty("w");
  });
});

describe("the provider says the recipient opted out", () => {
  it("suppresses the number, counts the opt-out, fails the step, and skips the next SMS", async () => {
    const w = world({
      stepId: CHECK_IN,
      sms: [
        {
          ok: false,
          error: {
            kind: "permanent",
            code: "21610",
            reason: "recipient unsubscribed",
            optedOut: true,
          },
        },
      ],
    });

    expect(await w.deliver()).toEqual({
      threw: "UnrecoverableError",
      message: "permanent 21610: recipient unsubscribed",
    });

    // A number that opted out of texts has revoked calls too.
    expect(w.suppressions.suppressed).toEqual([
      { channel: "sms", address: "+442079460958" },
      { channel: "voice", address: "+442079460958" },
    ]);
    expect(w.suppressions.counted).toEqual([
      { outcome: "optout", channel: "sms", kind: "-", ruleId: "-", reason: "provider" },
      { outcome: "optout", channel: "voice", kind: "-", ruleId: "-", reason: "provider" },
    ]);
    expect(w.record()).toMatchObject({
      state: "failed",
      attempts: 1,
      reason: { code: "permanent 21610", text: "recipient unsubscribed" },
    });
    expect(w.caps.released).toEqual([{ channel: "sms", customerId: CUSTOMER, followUpId: JOB_ID }]);
    expect(
      await w.suppressions.isSuppressed("sms", { customerId: "cus-2", address: "+442079460958" }),
    ).toBe(true);
  });
});

describe("a refunded purchase (event stopped)", () => {
  it("is cancelled at the claim: nothing sent, counted as refunded, slot given back", async () => {
    const w = world({
      stoppedWith: "refunded: order ord-1 refunded in full",
      email: [ok("never")],
    });

    expect(await w.deliver()).toEqual({
      returned: { outcome: "already-handled", state: "cancelled" },
    });

    expect(w.channels.email.sent).toEqual([]);
    expect(w.record()).toMatchObject({
      state: "cancelled",
      reason: { code: "refunded", text: "order ord-1 refunded in full" },
    });
    expect(w.counted()).toEqual([
      {
        outcome: "cancelled",
        channel: "email",
        kind: "thank-you",
        ruleId: "big-ticket",
        reason: "refunded",
      },
    ]);
    expect(w.caps.released).toEqual([emailSlot]);
    expect(w.caps.holds("email", CUSTOMER, JOB_ID)).toBe(false);
    expect(await series(w.metrics.cancelled)).toEqual([
      { labels: { channel: "email", kind: "thank-you", reason: "refunded" }, value: 1 },
    ]);
  });
});

describe("when the store itself fails", () => {
  it("the job is retried after the first backoff delay, without touching the step", async () => {
    const w = world({ email: [ok("never")] });
    w.store.sendView = async () => {
      throw new Error("Connection is closed.");
    };

    expect(await w.deliver()).toEqual({ threw: "DelayedError", message: "unexpected error" });

    expect(w.delayedUntil()).toEqual(["2026-11-24T12:00:22.500Z"]);
    expect(w.channels.email.sent).toEqual([]);
    expect(w.record()).toMatchObject({ state: "scheduled", attempts: 0 });
  });
});

describe("a Redis error after the send is recorded, before its bookkeeping is done", () => {
  it("leaves the step marked; the job's next run files the SMS, remembers the send, and sends nothing more", async () => {
    const w = world({ stepId: CHECK_IN, sms: [ok("SM0001")] });
    w.smsReferences.rememberSms = refusedAtFirst(
      1,
      w.smsReferences.rememberSms.bind(w.smsReferences),
    );

    expect(await w.deliver()).toEqual({ threw: "DelayedError", message: "unexpected error" });
    expect(w.record()).toMatchObject({
      state: "sent",
      providerId: "SM0001",
      bookkeepingPending: true,
    });
    expect(w.smsReferences.remembered).toEqual([]);
    expect(w.store.lastSent.get(CUSTOMER)).toBeUndefined();
    expect(await series(w.metrics.sent)).toEqual([]);

    expect(await w.deliver()).toEqual({
      returned: { outcome: "already-handled", state: "sent" },
    });
    expect(w.channels.sms.sent).toHaveLength(1);
    expect(w.smsReferences.remembered).toEqual([
      {
        sid: "SM0001",
        recipientMember: "member:+442079460958",
        at: { eventId: EVENT_ID, stepId: CHECK_IN, shard: 0, kind: "check-in" },
        keepMs: 5_184_000_000,
      },
    ]);
    expect(w.store.lastSent.get(CUSTOMER)).toEqual({
      eventId: EVENT_ID,
      stepId: CHECK_IN,
      channel: "sms",
      kind: "check-in",
      ruleId: "big-ticket",
      at: NOW_MS,
    });
    expect(w.record()).not.toHaveProperty("bookkeepingPending");
    expect(w.record()).toMatchObject({ state: "sent", attempts: 1 });
    expect(await series(w.metrics.sent)).toEqual([
      { labels: { channel: "sms", kind: "check-in" }, value: 1 },
    ]);
    // Done once: a later run of the job finds nothing left to do.
    expect(await w.deliver()).toEqual({
      returned: { outcome: "already-handled", state: "sent" },
    });
    expect(w.smsReferences.remembered).toHaveLength(1);
  });
});

describe("a Redis error as the send is recorded", () => {
  it("is tried again in the same run: the step is sent once, and no later run sends it again", async () => {
    const w = world({ email: [ok("m-1"), ok("m-2")] });
    w.store.transition = refusedAtFirst(
      2,
      w.store.transition.bind(w.store),
      (...args) => args[3].state === "sent",
    );

    expect(await w.deliver()).toEqual({ returned: { outcome: "sent", id: "m-1" } });
    expect(w.record()).toMatchObject({ state: "sent", providerId: "m-1", takeovers: 0 });
    expect(await w.deliver()).toEqual({
      returned: { outcome: "already-handled", state: "sent" },
    });
    expect(w.channels.email.sent).toHaveLength(1);
    expect(await series(w.metrics.possibleDuplicates)).toEqual([]);
  });
});

describe("a Redis error after the claim, before the message is handed to the provider", () => {
  it("gives the step back: the job's next run sends it at once, and no takeover is counted", async () => {
    const w = world({ stepId: CHECK_IN, sms: [ok("SM0003")] });
    w.smsReferences.textedBefore = refusedAtFirst(
      1,
      w.smsReferences.textedBefore.bind(w.smsReferences),
    );

    expect(await w.deliver()).toEqual({ threw: "DelayedError", message: "unexpected error" });
    expect(w.channels.sms.sent).toEqual([]);
    // Nothing went out: the step waits for the retry as one that was never claimed.
    expect(w.record()).toMatchObject({ state: "scheduled", attempts: 0, takeovers: 0 });

    expect(await w.deliver()).toEqual({ returned: { outcome: "sent", id: "SM0003" } });
    expect(w.channels.sms.sent).toHaveLength(1);
    expect(w.record()).toMatchObject({ state: "sent", attempts: 1, takeovers: 0 });
    expect(await series(w.metrics.possibleDuplicates)).toEqual([]);
  });
});

describe("a customer erased while their message was on its way", () => {
  it("is sent (the erasure could not stop it) and leaves nothing of it: no reference, no provider id, no latest sent", async () => {
    const w = world({ stepId: CHECK_IN, sms: [ok("SM0002")] });
    // The erasure runs while the provider takes the message: it stops and scrubs the record.
    const send = w.channels.sms.send.bind(w.channels.sms);
    w.channels.sms.send = async (message) => {
      w.store.stopEvent(EVENT_ID, "erased: the customer's data was erased");
      return send(message);
    };

    // Not even the job's result names the message's sid (kept a day with the finished job).
    expect(await w.deliver()).toEqual({ returned: { outcome: "sent" } });

    expect(w.channels.sms.sent).toHaveLength(1);
    expect(w.record()).toMatchObject({ state: "sent", attempts: 1 });
    expect(w.record()).not.toHaveProperty("providerId");
    expect(w.record()).not.toHaveProperty("bookkeepingPending");
    // What the bookkeeping wrote before it saw the erasure is removed again.
    expect(w.smsReferences.forgotten).toEqual([
      { channel: "sms", providerId: "SM0002", checkInOf: "member:+442079460958" },
    ]);
    expect(w.checkInsForgotten).toEqual([CUSTOMER]);
    expect(w.store.lastSent.get(CUSTOMER)).toBeUndefined();
    // Its charge id, by its sid: a `canceled` or `failed` Twilio reports later gives it back.
    expect([...w.smsReferences.erasedCharges]).toEqual([["SM0002", JOB_ID]]);
    // Counted as sent: it was.
    expect(w.counted()).toEqual([
      { outcome: "sent", channel: "sms", kind: "check-in", ruleId: "big-ticket" },
    ]);
  });

  it("keeps no charge id of a text Twilio reported delivered before its answer: a later `failed` gives nothing back", async () => {
    const w = world({ stepId: CHECK_IN, sms: [ok("SM0002")] });
    w.smsReferences.early.set("SM0002", [
      { status: "delivered", receivedAt: Date.parse("2026-01-01T00:00:00Z") },
    ]);
    const send = w.channels.sms.send.bind(w.channels.sms);
    w.channels.sms.send = async (message) => {
      w.store.stopEvent(EVENT_ID, "erased: the customer's data was erased");
      return send(message);
    };
    expect(await w.deliver()).toEqual({ returned: { outcome: "sent" } });
    expect(w.smsReferences.forgotten).toHaveLength(1);
    expect([...w.smsReferences.erasedCharges]).toEqual([]);
  });
});
