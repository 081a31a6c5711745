import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { eventFingerprints } from "../../src/domain/event-fingerprint.js";
import { CustomerHistoryStore } from "../../src/store/customer-history.js";
import { DeploymentEventIds, EventIdRegistry } from "../../src/store/event-ids.js";
import { ERASED_STOP, FollowUpStore } from "../../src/store/follow-up-store.js";
import { hourOf, idHash, StoreKeys } from "../../src/store/keys.js";
import { encodePurchase } from "../../src/store/purchase-codec.js";
import { purchaseOfFields } from "../../src/store/purchase-fields.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import { purchase } from "../support/fixtures.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";

const DAY = 86_400_000;
let redis: Redis;
let prefix: string;
let store: FollowUpStore;
let history: CustomerHistoryStore;
let keys: StoreKeys;

beforeAll(() => {
  redis = new Redis(inject("redisUrl"), { maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(() => {
  prefix = uniquePrefix("store");
  store = new FollowUpStore(redis, prefix);
  history = new CustomerHistoryStore(redis, prefix);
  keys = new StoreKeys(prefix);
});
afterEach(async () => {
  await deleteKeysWithPrefix(redis, prefix);
});

const event = purchase({ id: "evt-store" });
const step = (dueAt: number) => ({
  stepId: "thank-you.thank-you",
  dueAt,
  channel: "email",
  kind: "thank-you",
  ruleId: "thank-you",
  inSchedule: false,
});
const recordKey = () => keys.eventRecord("evt-store");
const purchaseKey = () => keys.purchase("evt-store");

/** A claimed step's send, recorded as the worker records it: `sent`, naming its message. */
const sentAs = (stepId: string, providerId: string, at: number) =>
  store.transition("evt-store", stepId, ["sending"], { state: "sent", providerId }, at);

describe("the follow-up store", () => {
  it("keeps only the part of a purchase its timeline needs once its last step has ended, and a stale plan does not bring the rest back", async () => {
    const now = Date.now();
    await history.recordPurchase(event, ["fp-1"], 365 * DAY, 90 * DAY);
    await store.schedule(event, now + 90 * DAY, [step(now)], now, 1);
    expect(await store.loadEvent("evt-store")).toEqual(event);
    // Reports' summary: from the whole purchase while a step is pending (no copy of it)…
    const summary = { orderId: event.orderId, customerName: "Ana Novak" };
    expect(await redis.hexists(recordKey(), "m")).toBe(0);
    expect(await store.summary("evt-store")).toEqual(summary);
    await store.claim("evt-store", "thank-you.thank-you", now, 60_000);
    await store.transition("evt-store", "thank-you.thank-you", ["sending"], { state: "sent" }, now);
    const kept = {
      id: "evt-store",
      orderId: event.orderId,
      occurredAt: event.occurredAt,
      customer: {
        id: event.customer.id,
        firstName: "Ana",
        email: event.customer.email,
        phone: event.customer.phone,
        timezone: "Europe/London",
        consent: { email: true, sms: true },
      },
      items: event.items.map((i) => ({
        name: i.name,
        quantity: i.quantity,
        unitPrice: i.unitPrice,
      })),
      total: event.total,
    };
    expect(await store.loadKept("evt-store")).toEqual(kept);
    expect(await store.loadEvent("evt-store")).toBeUndefined();
    // No surname, no category, no SKU: only the kept part is stored, in the record.
    const stored = purchaseOfFields(await redis.hgetallBuffer(recordKey()));
    expect(stored?.[0]).toBe(2);
    expect(await redis.exists(purchaseKey())).toBe(0);
    // …and, the surname gone from what is kept, from the summary written as it was trimmed.
    expect(await redis.hexists(recordKey(), "m")).toBe(1);
    expect(await store.summary("evt-store")).toEqual(summary);

    // The same plan again, as a second delivery of the event that read the step before it was sent.
    expect(await store.schedule(event, now + 90 * DAY, [step(now)], now, 1)).toBe(0);
    expect(await store.loadEvent("evt-store")).toBeUndefined();
    expect(await store.loadKept("evt-store")).toEqual(kept);
  });

  it("reads a step with its purchase at once, and scrubs the purchase with the last pending step's change", async () => {
    const now = Date.now();
    const checkIn = {
      ...step(now + 90 * DAY),
      stepId: "big-ticket.check-in",
      channel: "sms",
      kind: "check-in",
      ruleId: "big-ticket",
    };
    await history.recordPurchase(event, ["fp-1"], 365 * DAY, 90 * DAY);
    await store.schedule(event, now + 200 * DAY, [step(now), checkIn], now, 1);

    // The check-in still waits: sending the thank-you is not the purchase's last change.
    const first = await store.sendView("evt-store", "thank-you.thank-you");
    expect(first.record).toMatchObject({ state: "scheduled", dueAt: now });
    expect(first.event).toEqual(event);
    expect(first.lastStep).toBeUndefined();
    await store.claim("evt-store", "thank-you.thank-you", now, 60_000);
    await store.transition("evt-store", "thank-you.thank-you", ["sending"], { state: "sent" }, now);
    expect(await store.loadEvent("evt-store")).toEqual(event);

    const last = await store.sendView("evt-store", "big-ticket.check-in");
    expect(last.event).toEqual(event);
    const trim = last.lastStep?.();
    expect(trim?.asRead).toEqual(purchaseOfFields(await redis.hgetallBuffer(recordKey())));
    await store.claim("evt-store", "big-ticket.check-in", now, 60_000);
    const skipped = await store.transition(
      "evt-store",
      "big-ticket.check-in",
      ["sending"],
      { state: "skipped", reason: { code: "opted-out", text: "opted out" } },
      now,
      undefined,
      undefined,
      trim,
    );
    expect(skipped?.state).toBe("skipped");
    expect(await store.loadEvent("evt-store")).toBeUndefined();
    expect((await store.loadKept("evt-store"))?.customer.firstName).toBe("Ana");
    expect(await store.summary("evt-store")).toEqual({
      orderId: event.orderId,
      customerName: "Ana Novak",
    });
    // Read again (a resend): rebuilt from the kept part, with nothing left to scrub.
    const again = await store.sendView("evt-store", "big-ticket.check-in");
    expect(again.record?.state).toBe("skipped");
    expect(again.event?.customer.name).toBe("Ana");
    expect(again.lastStep).toBeUndefined();
    // An event without a record: neither.
    expect(await store.sendView("evt-gone", "thank-you.thank-you")).toEqual({});
  });

  it("keeps the grace end of a step planned late until a re-plan moves it or an operator requeues it", async () => {
    const now = Date.now();
    const id = "thank-you.thank-you";
    const graceEndsAt = now + 3_600_000;
    const read = async () => (await store.stepRecords("evt-store", [id])).get(id);
    await history.recordPurchase(event, ["fp-1"], 365 * DAY, 90 * DAY);
    await store.schedule(event, now + 90 * DAY, [{ ...step(now), graceEndsAt }], now, 1);
    expect(await read()).toMatchObject({ state: "scheduled", dueAt: now, graceEndsAt });
    const replan = (dueAt: number, plannedDueAt: number, late?: number, generation = 2) =>
      store.replan(
        "evt-store",
        generation,
        [
          {
            stepId: id,
            plannedDueAt,
            action: "move",
            dueAt,
            ...(late !== undefined && { graceEndsAt: late }),
            countedChannel: "email",
            channel: "email",
            kind: "thank-you",
            ruleId: "thank-you",
          },
        ],
        now,
        now + 90 * DAY,
      );
    // Moved to another late opening: the grace end the re-plan found; moved on time: none.
    expect(await replan(now + 60_000, now, graceEndsAt + 1, 2)).toBe(1);
    expect(await read()).toMatchObject({ dueAt: now + 60_000, graceEndsAt: graceEndsAt + 1 });
    expect(await replan(now + DAY, now + 60_000, undefined, 3)).toBe(1);
    const onTime = await read();
    expect(onTime).toMatchObject({ dueAt: now + DAY });
    expect(onTime?.graceEndsAt).toBeUndefined();
    // Planned late again (a new generation), sent, then resent by an operator: grace from now.
    expect(await replan(now, now + DAY, graceEndsAt, 4)).toBe(1);
    await store.claim("evt-store", id, now, 60_000);
    await store.transition("evt-store", id, ["sending"], { state: "sent" }, now);
    const ledger = {
      outcome: "resent" as const,
      channel: "email",
      kind: "thank-you",
      ruleId: "thank-you",
    };
    const requeued = await store.requeue("evt-store", id, "resend", now + 5, ledger);
    expect(requeued).toMatchObject({ requeued: true, record: { dueAt: now + 5 } });
    expect(requeued.record?.graceEndsAt).toBeUndefined();
    expect((await read())?.graceEndsAt).toBeUndefined();
  });

  it("notes an SMS's delivery status on its step only while the step's record is of that message, not of one resent since", async () => {
    const now = Date.now();
    const id = "thank-you.thank-you";
    const read = async () => (await store.stepRecords("evt-store", [id])).get(id);
    const sms = { ...step(now), channel: "sms" };
    await history.recordPurchase(event, ["fp-1"], 365 * DAY, 90 * DAY);
    await store.schedule(event, now + 90 * DAY, [sms], now, 1);
    await store.claim("evt-store", id, now, 60_000);
    await sentAs(id, "SMold", now);
    const note = async (messageSid: string, status: string) =>
      (await store.noteSmsStatus("evt-store", id, { messageSid, status }, now + 1)).noted;
    expect(await note("SMold", "sent")).toBe("noted");
    const ledger = { outcome: "resent" as const, channel: "sms", kind: "thank-you", ruleId: "x" };
    expect(await store.requeue("evt-store", id, "resend", now + 2, ledger)).toMatchObject({
      requeued: true,
    });
    // The earlier message's late report finds the step waiting for its resend: not its status.
    expect(await note("SMold", "delivered")).toBe("another-message");
    expect((await read())?.delivery).toBeUndefined();
    await store.claim("evt-store", id, now + 3, 60_000);
    // Being sent again, the step names no message: a report of one it does not name (a send more
    // than five back, no longer among its earlier ids) is not the new send's either.
    expect(await note("SMancient", "canceled")).toBe("another-message");
    expect((await read())?.delivery).toBeUndefined();
    await sentAs(id, "SMnew", now + 4);
    expect(await note("SMnew", "queued")).toBe("noted");
    // Nor once the resent message's reports come: the step shows those.
    expect(await note("SMold", "undelivered")).toBe("another-message");
    expect(await note("SMnew", "sent")).toBe("noted");
    expect(await read()).toMatchObject({ state: "sent", delivery: { status: "sent" } });
  });

  it("keeps a record longer when planned again, never shorter", async () => {
    const now = Date.now();
    await history.recordPurchase(event, ["fp-1"], 365 * DAY, 90 * DAY);
    await store.schedule(event, now + 200 * DAY, [step(now + 100 * DAY)], now, 1);
    await store.schedule(event, now + 95 * DAY, [step(now + 100 * DAY)], now, 1);
    expect(await redis.pttl(recordKey())).toBeGreaterThan(199 * DAY);
    await store.schedule(event, now + 300 * DAY, [step(now + 100 * DAY)], now, 1);
    expect(await redis.pttl(recordKey())).toBeGreaterThan(299 * DAY);
    expect(await store.loadEvent("evt-store")).toEqual(event);
  });

  it("reads, trims and erases a purchase an earlier version kept in a key of its own", async () => {
    const now = Date.now();
    await history.recordPurchase(event, ["fp-1"], 365 * DAY, 90 * DAY);
    await redis.set(purchaseKey(), encodePurchase(event), "PX", 100 * DAY);
    await store.schedule(event, now + 200 * DAY, [step(now)], now, 1);
    expect(await redis.hexists(recordKey(), "p0")).toBe(0);
    expect(await redis.pttl(purchaseKey())).toBeGreaterThan(199 * DAY);
    expect(await store.loadForSend("evt-store")).toEqual(event);
    await store.claim("evt-store", "thank-you.thank-you", now, 60_000);
    await store.transition("evt-store", "thank-you.thank-you", ["sending"], { state: "sent" }, now);
    expect((await redis.getBuffer(purchaseKey()))?.[0]).toBe(2);
    expect(await redis.pexpiretime(purchaseKey())).toBe(await redis.pexpiretime(recordKey()));
    expect((await store.loadKept("evt-store"))?.customer.firstName).toBe("Ana");
    await store.erase("evt-store");
    expect(await redis.exists(purchaseKey())).toBe(0);
    expect(await store.loadKept("evt-store")).toBeUndefined();
  });

  it("never shortens a record an earlier version wrote (purchase inside it) when planned again", async () => {
    const now = Date.now();
    await redis.hset(recordKey(), { event: JSON.stringify(event), h: "0" });
    await redis.pexpireat(recordKey(), now + 200 * DAY);
    await store.schedule(event, now + 95 * DAY, [step(now + DAY)], now, 1);
    expect(await redis.pttl(recordKey())).toBeGreaterThan(199 * DAY);
  });

  it("stops an event it holds, and leaves no key behind for one that expired", async () => {
    const now = Date.now();
    await history.recordPurchase(event, ["fp-1"], 365 * DAY, 90 * DAY);
    await store.schedule(event, now + 90 * DAY, [step(now + DAY)], now, 1);
    await store.stopEvent("evt-store", "refunded: the order was refunded");
    const claim = await store.claim("evt-store", "thank-you.thank-you", now + DAY, 60_000);
    expect(claim).toMatchObject({ claimed: false, record: { state: "cancelled" } });

    await store.stopEvent("evt-expired", "refunded: the order was refunded");
    expect(await redis.exists(keys.eventRecord("evt-expired"))).toBe(0);
  });
});

describe("the bookkeeping after a send", () => {
  /** The purchase's thank-you, planned and claimed by a sender. */
  const beingSent = async () => {
    const now = Date.now();
    const stepId = "thank-you.thank-you";
    await history.recordPurchase(event, ["fp-1"], 365 * DAY, 90 * DAY);
    await store.schedule(event, now + 90 * DAY, [step(now)], now, 1);
    await store.claim("evt-store", stepId, now, 60_000);
    return { now, stepId, customerId: event.customer.id };
  };

  it("is marked pending with the sent state, and settling it clears the mark and never moves the customer's latest sent back", async () => {
    const { now, stepId, customerId } = await beingSent();
    await store.transition(
      "evt-store",
      stepId,
      ["sending"],
      { state: "sent", providerId: "<m1@shop.example>", bookkeepingPending: true },
      now,
    );
    const recordOf = async () => (await store.stepRecords("evt-store", [stepId])).get(stepId);
    expect(await recordOf()).toMatchObject({ state: "sent", bookkeepingPending: true });

    const sent = (at: number) => ({
      eventId: "evt-store",
      stepId,
      channel: "email",
      kind: "thank-you",
      ruleId: "thank-you",
      at,
    });
    // A later send to the customer was remembered meanwhile: the redone bookkeeping keeps it.
    await redis.set(keys.lastSent(customerId), JSON.stringify(sent(now + 5_000)));
    await store.settleSent("evt-store", stepId, customerId, sent(now), DAY);
    expect(await recordOf()).toEqual({
      state: "sent",
      changedAt: now,
      dueAt: now,
      attempts: 0,
      channel: "email",
      kind: "thank-you",
      providerId: "<m1@shop.example>",
      takeovers: 0,
      resends: 0,
      retries: 0,
    });
    expect(JSON.parse((await redis.get(keys.lastSent(customerId))) ?? "")).toEqual(
      sent(now + 5_000),
    );
    // An earlier one is replaced, with the attribution window's expiry, and kept as the one
    // before (`p`: put back should the new one be a text Twilio reports canceled or failed).
    await redis.set(keys.lastSent(customerId), JSON.stringify(sent(now - 5_000)));
    await store.settleSent("evt-store", stepId, customerId, sent(now), DAY);
    expect(JSON.parse((await redis.get(keys.lastSent(customerId))) ?? "")).toEqual({
      ...sent(now),
      p: sent(now - 5_000),
    });
    expect(await redis.pttl(keys.lastSent(customerId))).toBeGreaterThan(DAY - 60_000);

    // A purchase that expired meanwhile leaves nothing behind.
    await redis.del(keys.lastSent(customerId), recordKey());
    expect(await store.settleSent("evt-store", stepId, customerId, sent(now), DAY)).toBe("gone");
    expect(await redis.exists(keys.lastSent(customerId), recordKey())).toBe(0);
  });

  it("keeps nothing of a send whose customer was erased while it was on its way", async () => {
    const { now, stepId, customerId } = await beingSent();
    // The erasure scrubs the record while the message is with the provider…
    await store.erase("evt-store");
    // …which then accepts it.
    await store.transition(
      "evt-store",
      stepId,
      ["sending"],
      {
        state: "sent",
        providerId: "<m2@shop.example>",
        bookkeepingPending: true,
        codeHash: "code-hash",
      },
      now,
    );
    const sent = {
      eventId: "evt-store",
      stepId,
      channel: "email",
      kind: "thank-you",
      ruleId: "thank-you",
      at: now,
    };
    expect(await store.settleSent("evt-store", stepId, customerId, sent, DAY)).toBe("erased");
    const record = (await store.stepRecords("evt-store", [stepId])).get(stepId);
    expect(record).toMatchObject({ state: "sent", attempts: 0 });
    expect(record).not.toHaveProperty("providerId");
    expect(record).not.toHaveProperty("codeHash");
    expect(record).not.toHaveProperty("bookkeepingPending");
    expect(await redis.exists(keys.lastSent(customerId))).toBe(0);
  });
});

describe("the number's latest check-in, written by a send's bookkeeping", () => {
  it("keeps a check-in sent later when an earlier one's bookkeeping is redone after it", async () => {
    const refs = new SmsReferences(redis, prefix);
    const keepMs = 60 * DAY;
    const member = "h:latest-check-in";
    const checkIn = (eventId: string, sid: string, sentAt: number) =>
      refs.rememberSms(
        sid,
        member,
        { eventId, stepId: "big-ticket.check-in", shard: 0, kind: "check-in" },
        keepMs,
        sentAt,
      );
    const older = Date.now() - 60_000;
    const newer = older + 30_000;
    // The newer check-in's bookkeeping is done; the older one's failed (a Redis error after its
    // send) and its job's retry redoes it now, with the time the older one was sent.
    await checkIn("evt-newer", "SMnewer", newer);
    await checkIn("evt-older", "SMolder", older);
    // Replies go on being filed against the newer check-in, which the customer answers.
    expect(await refs.latestCheckIn(member)).toEqual({
      eventId: "evt-newer",
      stepId: "big-ticket.check-in",
      shard: 0,
    });
    expect(await redis.pexpiretime(keys.latestCheckIn(member))).toBe(newer + keepMs);
    // The older SMS keeps its own reference (status callbacks find their step).
    expect(await refs.stepOfSms("SMolder")).toMatchObject({ eventId: "evt-older" });

    // A check-in sent after both becomes the latest; its own bookkeeping redone changes nothing.
    const latest = newer + 10_000;
    await checkIn("evt-latest", "SMlatest", latest);
    await checkIn("evt-latest", "SMlatest", latest);
    expect(await refs.latestCheckIn(member)).toMatchObject({ eventId: "evt-latest" });
    expect(await redis.pexpiretime(keys.latestCheckIn(member))).toBe(latest + keepMs);
    // One remembered without an expiry (as no version writes it) is replaced, as before.
    await redis.set(keys.latestCheckIn(member), "evt-odd\nbig-ticket.check-in");
    await checkIn("evt-older", "SMolder", older);
    expect(await refs.latestCheckIn(member)).toMatchObject({ eventId: "evt-older" });
  });
});

describe("a customer's list of purchases", () => {
  it("keeps every purchase whose record lives, and drops ended ones past the latest 100", async () => {
    const bought = (n: number) =>
      purchase({
        id: `evt-many-${n}`,
        occurredAt: new Date(Date.UTC(2026, 10, 1) + n * 60_000).toISOString(),
        customer: { id: "cus-many" },
      });
    for (let n = 0; n < 110; n++) await history.recordPurchase(bought(n), [`fp-${n}`], DAY, DAY);
    // The five oldest purchases' records have gone (their retention ended).
    for (let n = 0; n < 5; n++) await redis.del(keys.eventRecord(`evt-many-${n}`));
    expect(await history.purchasesOf("cus-many")).toHaveLength(110);
    // Each purchase's entry names its order (erasure reaches the order from there).
    expect(await redis.hget(keys.customerHistory("cus-many"), "e:evt-many-0")).toBe(
      `${Date.UTC(2026, 10, 1)}:${idHash("ord-1")}`,
    );
    // Past 120 fields, a purchase takes out the ended ones; older ones with records stay.
    for (let n = 110; n < 125; n++) await history.recordPurchase(bought(n), [`fp-${n}`], DAY, DAY);
    const listed = (await history.purchasesOf("cus-many")).map((p) => p.eventId);
    expect(listed).toHaveLength(120);
    expect(listed[0]).toBe("evt-many-124");
    expect(listed.at(-1)).toBe("evt-many-5");
    expect(listed).not.toContain("evt-many-4");
    expect(await redis.hget(keys.customerHistory("cus-many"), "n")).toBe("125");
    // The next pruning waits until the history has doubled (it pruned at 118 purchases down to
    // 113, with `n`, `last` and the phone number's `ph:` 116 fields → 232): a customer with many
    // live purchases is not read whole on every purchase.
    expect(await redis.hget(keys.customerHistory("cus-many"), "pn")).toBe("232");
    for (let n = 5; n < 10; n++) await redis.del(keys.eventRecord(`evt-many-${n}`));
    await history.recordPurchase(bought(125), ["fp-125"], DAY, DAY);
    expect(await history.purchasesOf("cus-many")).toHaveLength(121);
  });
});

describe("a customer's steps under a cooldown", () => {
  it("are each purchase's, whichever falls due later, a version before's too, leaving out the purchase asking", async () => {
    const at = Date.UTC(2026, 2, 1);
    const remember = (eventId: string, dueAt: number) =>
      history.rememberSteps(
        "cus-cool",
        { eventId, purchasedAt: at },
        [
          {
            stepId: "offer.discount",
            ruleId: "offer",
            kind: "discount",
            dueAt,
            byRule: true,
            byKind: true,
          },
        ],
        DAY * 400,
        at,
      );
    // The version before kept the latest due per field, of one purchase: evt-old's.
    await redis.hset(keys.recentSteps("cus-cool"), "k:discount", `${at + 5 * DAY} evt-old`);
    await remember("evt-late", at + 60 * DAY);
    await remember("evt-soon", at + DAY);
    const recent = await history.recentSteps("cus-cool", "evt-new");
    expect(recent.byRule.get("offer")?.toSorted()).toEqual([at + DAY, at + 60 * DAY]);
    expect(recent.byKind.get("discount")?.toSorted()).toEqual([
      at + DAY,
      at + 5 * DAY,
      at + 60 * DAY,
    ]);
    // A purchase planned again is held only to the others.
    expect(
      (await history.recentSteps("cus-cool", "evt-soon")).byKind.get("discount")?.toSorted(),
    ).toEqual([at + 5 * DAY, at + 60 * DAY]);
  });

  it("keeps each of a purchase's steps of one kind: a call's and its fallback's", async () => {
    const at = Date.UTC(2026, 2, 1);
    const checkIn = (stepId: string, dueAt: number) => ({
      stepId,
      ruleId: "care",
      kind: "check-in" as const,
      dueAt,
      byRule: false,
      byKind: true,
    });
    await history.rememberSteps(
      "cus-call",
      { eventId: "evt-call", purchasedAt: at },
      [checkIn("care.call", at + 30 * DAY), checkIn("care.call-fallback", at + 31 * DAY)],
      DAY * 400,
      at,
    );
    expect(
      (await history.recentSteps("cus-call", "evt-new")).byKind.get("check-in")?.toSorted(),
    ).toEqual([at + 30 * DAY, at + 31 * DAY]);
  });
});

describe("a step of a stopped event, cancelled when a sender claims it", () => {
  it.each([
    ["a full refund", "refunded: the order was refunded", "refunded"],
    ["an erasure", ERASED_STOP, "erased"],
  ])("after %s is counted with the stop's reason", async (_name, stop, reason) => {
    const now = Date.now();
    await history.recordPurchase(event, ["fp-1"], 365 * DAY, 90 * DAY);
    await store.schedule(event, now + 90 * DAY, [step(now)], now, 1);
    await store.stopEvent("evt-store", stop);
    const claim = await store.claim("evt-store", "thank-you.thank-you", now, 60_000, {
      // What the delivery asks to count a cancellation with: the stop decides the reason.
      ifCancelled: {
        outcome: "cancelled",
        channel: "email",
        kind: "thank-you",
        ruleId: "thank-you",
        reason: "refunded",
      },
      dueAt: now,
    });
    expect(claim.claimed).toBe(false);
    expect(claim.record.state).toBe("cancelled");
    expect(claim.record.reason?.code).toBe(reason);
    const hour = await redis.hgetall(keys.ledgerHour(hourOf(now)));
    expect(hour).toMatchObject({
      "cancelled|email|thank-you|thank-you": "1",
      [`reason|cancelled|email|thank-you|${reason}`]: "1",
    });
    expect(Object.keys(hour).filter((field) => field.startsWith("reason|"))).toHaveLength(1);
  });
});

describe("an event recorded by a version that hashed its instant as written", () => {
  // Written with an offset, the instant's spelling was part of the fingerprint before
  // 6 December 2026; now the kept fingerprint is of UTC with milliseconds.
  const sent = purchase({ id: "evt-earlier", occurredAt: "2026-11-23T11:00:00+01:00" });
  const [kept, earlier = ""] = eventFingerprints(sent);
  const another = purchase({
    id: "evt-earlier",
    occurredAt: "2026-11-23T11:00:00+01:00",
    customer: { id: "cus-other" },
  });

  it("is the same event when sent again as it was: its history counts it once", async () => {
    expect(earlier).not.toBe("");
    const first = await history.recordPurchase(sent, [earlier], 365 * DAY, 90 * DAY);
    expect(first).toMatchObject({ firstSeen: true });
    const again = await history.recordPurchase(sent, eventFingerprints(sent), 365 * DAY, 90 * DAY);
    expect(again).toMatchObject({ firstSeen: false, history: { previousPurchases: 0 } });
    // The record keeps the fingerprint it was given first.
    expect(await redis.hget(keys.eventRecord("evt-earlier"), "f")).toBe(earlier);
    expect(
      await history.recordPurchase(another, eventFingerprints(another), 365 * DAY, 90 * DAY),
    ).toEqual({ conflict: true });
  });

  it("is the same event for the id claims of refunds and opt-outs and of the deployment", async () => {
    const ids = new EventIdRegistry(redis, prefix);
    expect(await ids.claim("evt-earlier", [earlier], DAY)).toBe("first");
    expect(await ids.claim("evt-earlier", [kept, earlier], DAY)).toBe("repeat");
    expect(await ids.conflicts("evt-earlier", [kept, earlier])).toBe(false);
    expect(await ids.claim("evt-earlier", eventFingerprints(another), DAY)).toBe("conflict");
    expect(await ids.conflicts("evt-earlier", eventFingerprints(another))).toBe(true);

    const deployment = new DeploymentEventIds(redis, prefix);
    expect(await deployment.claim("evt-earlier", [earlier], DAY)).toBe("first");
    expect(await deployment.claim("evt-earlier", [kept, earlier], DAY)).toBe("repeat");
    expect(await deployment.conflicts("evt-earlier", [kept, earlier])).toBe(false);
    expect(await deployment.claim("evt-earlier", eventFingerprints(another), DAY)).toBe("conflict");
  });
});

describe("the consent a customer's purchases state", () => {
  const JAN_YES = { given: true, at: Date.parse("2026-01-01T10:00:00Z") };
  const MAR_NO = { given: false, at: Date.parse("2026-03-01T10:00:00Z") };
  const bought = (id: string, occurredAt: string, consent?: Record<string, boolean>) =>
    purchase({
      id,
      occurredAt,
      customer: { id: "cus-consent", ...(consent ? { consent } : { consent: undefined }) },
    });

  it("is the latest purchase's that states it, per channel, whatever order they are taken in", async () => {
    expect(await history.latestConsent("cus-consent")).toEqual({});
    // The later purchase (box cleared) is taken in first, the earlier one (box ticked) after.
    await history.recordPurchase(
      bought("evt-c2", "2026-03-01T10:00:00Z", { email: false }),
      ["fp-c2"],
      365 * DAY,
      90 * DAY,
    );
    await history.recordPurchase(
      bought("evt-c1", "2026-01-01T10:00:00Z", { email: true, sms: true }),
      ["fp-c1"],
      365 * DAY,
      90 * DAY,
    );
    expect(await history.latestConsent("cus-consent")).toEqual({ email: MAR_NO, sms: JAN_YES });
    // One that states nothing changes nothing; a still later one decides again.
    await history.recordPurchase(
      bought("evt-c3", "2026-04-01T10:00:00Z"),
      ["fp-c3"],
      365 * DAY,
      90 * DAY,
    );
    expect(await history.latestConsent("cus-consent")).toEqual({ email: MAR_NO, sms: JAN_YES });
    await history.recordPurchase(
      bought("evt-c4", "2026-05-01T10:00:00Z", { email: true, voice: false }),
      ["fp-c4"],
      365 * DAY,
      90 * DAY,
    );
    expect(await history.latestConsent("cus-consent")).toEqual({
      email: { given: true, at: Date.parse("2026-05-01T10:00:00Z") },
      sms: JAN_YES,
      voice: { given: false, at: Date.parse("2026-05-01T10:00:00Z") },
    });
    // Kept in one short field of the history.
    expect(await redis.hget(keys.customerHistory("cus-consent"), "cn")).toMatch(
      /^e1[0-9a-z]+ s1[0-9a-z]+ v0[0-9a-z]+$/,
    );
  });

  it("of purchases made at the same instant, is a withdrawal, whichever is taken in last", async () => {
    // Two checkouts the publisher dates alike (a till's import gives the day only, say): one
    // clears the SMS box, the other ticks it. Nothing tells which came later: consent that cannot
    // be shown to be the latest word is not taken.
    const at = "2026-06-01T00:00:00Z";
    const june = (given: boolean) => ({ given, at: Date.parse(at) });
    await history.recordPurchase(
      bought("evt-t1", at, { sms: false }),
      ["fp-t1"],
      365 * DAY,
      90 * DAY,
    );
    await history.recordPurchase(
      bought("evt-t2", at, { sms: true, email: true }),
      ["fp-t2"],
      365 * DAY,
      90 * DAY,
    );
    expect(await history.latestConsent("cus-consent")).toEqual({
      sms: june(false),
      email: june(true),
    });
    // A later checkout decides again.
    await history.recordPurchase(
      bought("evt-t3", "2026-06-02T00:00:00Z", { sms: true }),
      ["fp-t3"],
      365 * DAY,
      90 * DAY,
    );
    expect((await history.latestConsent("cus-consent")).sms?.given).toBe(true);
  });
});
