import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { CHANNELS } from "../../src/domain/events.js";
import { followUpJobId } from "../../src/queue/names.js";
import {
  FORMER_GLOBAL_TOMBSTONE,
  KEY_LAYOUT,
  olderLayoutRemains,
  upgradeKeyLayout,
} from "../../src/store/key-layout.js";
import { formerGlobalBase, StoreKeys } from "../../src/store/keys.js";
import { isCluster } from "../../src/store/redis-client.js";
import { scanKeys } from "../../src/store/reshard-store.js";
import { moveRefusal } from "../../src/store/shards.js";
import { sharedSecret } from "../../src/store/shared-secrets.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { backToFormerGlobalKeys } from "../support/former-layout.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
  stepRecordOf,
  waitForState,
  whereWaiting,
} from "../support/pipeline-harness.js";

/**
 * Key layout 6 moved the global keys from beside the input queue to a hash tag of their own. Runs
 * on one Redis (RENAMENX) and in the cluster run (copies across slots).
 */
const CHECK_IN = "big-ticket.check-in";
const THANK_YOU = "big-ticket.thank-you";
let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const minutesAgo = (minutes: number) =>
  DateTime.utc().minus({ minutes }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

/** The same time for each publication of an event: a re-published event carries the same content. */
const BOUGHT_AT = minutesAgo(10);
const tv = (id: string, customerId: string) =>
  purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt: BOUGHT_AT,
    // Each customer an address of their own: a purchase under an opted-out id opts its address out.
    customer: { id: customerId, email: `${customerId}@example.com` },
    items: [item("televisions", "899.00", { name: "OLED TV" })],
  }) as never;

async function keysUnder(p: PipelineHarness, base: string): Promise<string[]> {
  const found: string[] = [];
  for await (const batch of scanKeys(p.redis, `${base}*`)) found.push(...batch);
  return found.sort();
}

describe("upgrading a store of layout 5, whose global keys sat beside the input queue", () => {
  it("moves them at start-up; opt-outs, orders, secrets and the schedule go on", async () => {
    pipeline = await startPipeline("layout-six");
    const p = pipeline;
    const keys = new StoreKeys(p.prefix);
    await p.publisher.publish(tv("evt-six-tv", "cus-six-tv"));
    await p.publisher.publish(tv("evt-six-back", "cus-six-back"));
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-six",
      occurredAt: minutesAgo(5),
      customerId: "cus-six-off",
      channels: ["email"],
    });
    await eventProcessed(p, "unsub-six");
    for (const id of ["evt-six-tv", "evt-six-back"])
      await eventually(
        async () => (await whereWaiting(p, id, CHECK_IN)) ?? undefined,
        `the check-in of ${id} to wait in the schedule`,
      );
    const secret = await sharedSecret(p.redis, p.prefix, "unsubscribe");
    await p.worker?.close();
    p.worker = undefined;

    // The Redis as a worker of layout 5 left it.
    const before = await backToFormerGlobalKeys(p.redis, p.prefix, "5");
    expect(before.lasting).toBeGreaterThan(10);
    expect(await olderLayoutRemains(p.redis, p.prefix)).toBe(true);
    expect(await p.redis.exists(keys.rulesGenerations(), keys.layoutVersion())).toBe(0);

    await p.startWorker();
    expect(await p.redis.get(keys.layoutVersion())).toBe(String(KEY_LAYOUT));
    expect(KEY_LAYOUT).toBe(6);
    expect(await olderLayoutRemains(p.redis, p.prefix)).toBe(false);
    // Only tombstones are left under the former names: strings where the opt-outs were, so that
    // a worker of layout 5 started by mistake fails its opt-out check instead of sending.
    const former = formerGlobalBase(p.prefix);
    const left = await keysUnder(p, former);
    expect(left).toEqual(
      CHANNELS.flatMap((channel) => [
        `${former}suppressed:${channel}`,
        `${former}suppressed:${channel}:marketing`,
      ]).sort(),
    );
    for (const key of left) expect(await p.redis.get(key)).toBe(FORMER_GLOBAL_TOMBSTONE);
    await expect(p.redis.sismember(left[0] ?? "", "x")).rejects.toThrow(/WRONGTYPE/);
    const logged = p.logs.find((line) => line.msg === "store keys renamed to the new key layout");
    expect(logged).toEqual(expect.objectContaining({ kept: 0, layout: 6 }));
    expect(logged?.renamed).toBeGreaterThanOrEqual(before.lasting);
    expect(logged?.renamed).toBeLessThanOrEqual(before.moved);

    // The secret is the same (unsubscribe links already sent keep working), the event ids are
    // known, the opt-out holds, the order links lead a refund to its purchase, and the
    // thank-you waiting in the schedule goes out once.
    expect(await sharedSecret(p.redis, p.prefix, "unsubscribe")).toBe(secret);
    await p.publisher.publish(tv("evt-six-tv", "cus-six-tv"));
    await p.publisher.publish(tv("evt-six-off", "cus-six-off"));
    await eventProcessed(p, "evt-six-off");
    expect((await stepRecordOf(p, "evt-six-off", THANK_YOU))?.state).not.toBe("scheduled");
    expect(await whereWaiting(p, "evt-six-off", THANK_YOU)).toBeUndefined();
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-six-back",
      occurredAt: minutesAgo(0),
      orderId: "ord-evt-six-back",
    });
    await eventProcessed(p, "ref-six-back");
    for (const stepId of [THANK_YOU, CHECK_IN]) {
      const refunded = await waitForState(p, "evt-six-back", stepId, "cancelled");
      expect(refunded.reason?.code).toBe("refunded");
      expect(await p.followUps.getJob(followUpJobId("evt-six-back", stepId))).toBeUndefined();
    }
    expect(await whereWaiting(p, "evt-six-tv", CHECK_IN)).toBe("schedule");
    await promoteStep(p, "evt-six-tv", THANK_YOU);
    const sent = await waitForState(p, "evt-six-tv", THANK_YOU, "sent");
    expect(sent.attempts).toBe(1);
    expect(p.sink.messages).toHaveLength(1);
  });

  it("refuses to start while a reshard begun by a worker of layout 5 is unfinished", async () => {
    pipeline = await startPipeline("layout-six-reshard", { startWorker: false });
    const p = pipeline;
    const former = formerGlobalBase(p.prefix);
    await p.redis.set(`${former}layout`, "5");
    await p.redis.hset(`${former}reshard`, "from", "1", "to", "2");
    await expect(p.startWorker()).rejects.toThrow(
      /followups reshard of an older followups version is under way on this Redis and prefix/,
    );
    // Nothing moved: the older version can finish its reshard.
    expect(await p.redis.get(`${former}layout`)).toBe("5");
    expect(await p.redis.exists(new StoreKeys(p.prefix).layoutLock())).toBe(0);
  });

  it("a worker that takes the lock just after another finished moves nothing", async () => {
    pipeline = await startPipeline("layout-six-race", { startWorker: false });
    const p = pipeline;
    const keys = new StoreKeys(p.prefix);
    const former = formerGlobalBase(p.prefix);
    await p.redis.set(`${former}layout`, "5");
    await p.redis.sadd(`${former}suppressed:email`, "k:off");
    // Worker B read the mark before worker A finished, and takes the lock once A let it go: A's
    // upgrade is done when B's own begins (here, while B counts older workers).
    const done = await upgradeKeyLayout(p.redis, p.prefix, {
      olderWorkers: async () => {
        // (Moved by hand: on a cluster the two names lie in different slots.)
        await p.redis.sadd(keys.suppressions("email"), "k:off");
        await p.redis.del(`${former}suppressed:email`, `${former}layout`);
        for (const list of ["email", "email:marketing", "sms", "sms:marketing"])
          await p.redis.set(`${former}suppressed:${list}`, FORMER_GLOBAL_TOMBSTONE);
        await p.redis.set(keys.layoutVersion(), String(KEY_LAYOUT));
        return 0;
      },
    });
    expect(done).toEqual({ renamed: 0, kept: 0 });
    // A's tombstones stay where they are; no live opt-out list became a string.
    expect(await p.redis.get(`${former}suppressed:sms:marketing`)).toBe(FORMER_GLOBAL_TOMBSTONE);
    expect(await p.redis.smembers(keys.suppressions("email"))).toEqual(["k:off"]);
    for (const channel of CHANNELS)
      for (const list of [keys.suppressions(channel), keys.marketingSuppressions(channel)])
        expect(await p.redis.type(list), list).not.toBe("string");
    expect(await p.redis.exists(keys.layoutLock())).toBe(0);
  });

  it("finishes an upgrade a worker left midway, and one-shot commands wait for it", async () => {
    pipeline = await startPipeline("layout-six-midway", { startWorker: false });
    const p = pipeline;
    const keys = new StoreKeys(p.prefix);
    const former = formerGlobalBase(p.prefix);
    // Layout 5, half moved: the mark, a secret and an opt-out list under their new names; another
    // list and an SMS reference still beside the input queue, and no tombstones yet.
    await p.redis.set(keys.layoutVersion(), "5");
    await p.redis.set(keys.sharedSecret("unsubscribe"), "kept-secret-of-layout-5-0123456789abcdef");
    await p.redis.sadd(keys.suppressions("sms"), "k:moved");
    await p.redis.sadd(`${former}suppressed:email`, "k:left");
    await p.redis.set(`${former}sid:SM-left`, "a reference");
    expect(await olderLayoutRemains(p.redis, p.prefix)).toBe(true);
    await p.startWorker();
    expect(await olderLayoutRemains(p.redis, p.prefix)).toBe(false);
    expect(await p.redis.smembers(keys.suppressions("sms"))).toEqual(["k:moved"]);
    expect(await p.redis.smembers(keys.suppressions("email"))).toEqual(["k:left"]);
    expect(await sharedSecret(p.redis, p.prefix, "unsubscribe")).toBe(
      "kept-secret-of-layout-5-0123456789abcdef",
    );
    expect(await p.redis.get(keys.smsMessage("SM-left"))).toBe("a reference");
    for (const list of ["email", "sms", "voice:marketing"])
      expect(await p.redis.get(`${former}suppressed:${list}`)).toBe(FORMER_GLOBAL_TOMBSTONE);
  });

  it("keeps a key whose new name is taken, unless it holds the same (a copy left by a crash)", async () => {
    pipeline = await startPipeline("layout-six-taken", { startWorker: false });
    const p = pipeline;
    const keys = new StoreKeys(p.prefix);
    const former = formerGlobalBase(p.prefix);
    await p.redis.set(`${former}layout`, "5");
    await p.redis.set(`${former}sid:SM-same`, "the same");
    await p.redis.set(keys.smsMessage("SM-same"), "the same");
    await p.redis.set(`${former}sid:SM-other`, "older");
    await p.redis.set(keys.smsMessage("SM-other"), "newer");
    const done = await upgradeKeyLayout(p.redis, p.prefix);
    expect(await p.redis.get(keys.smsMessage("SM-other"))).toBe("newer");
    expect(await p.redis.get(`${former}sid:SM-other`)).toBe("older");
    expect(await p.redis.get(keys.smsMessage("SM-same"))).toBe("the same");
    if (isCluster(p.redis)) {
      // Copied across slots: the same value under the new name is this key's own copy.
      expect(await p.redis.exists(`${former}sid:SM-same`)).toBe(0);
      expect(done.kept).toBe(1);
    } else {
      // RENAMENX is atomic: a taken name is never this key's copy, and both are kept.
      expect(await p.redis.get(`${former}sid:SM-same`)).toBe("the same");
      expect(done.kept).toBe(2);
    }
  });
});

describe("a Redis that a version before layout 6 moved to another (followups migrate)", () => {
  it("refuses publishing and commands by the mark that version left", async () => {
    pipeline = await startPipeline("layout-six-moved", { startWorker: false });
    const p = pipeline;
    await p.redis.set(
      `${formerGlobalBase(p.prefix)}moved`,
      JSON.stringify({
        redis: "redis://new-redis:6379",
        startedAt: "2026-12-01T10:00:00Z",
        finishedAt: "2026-12-01T10:05:00Z",
      }),
    );
    expect(await moveRefusal(p.redis, p.prefix)).toMatch(
      /^this deployment moved to redis:\/\/new-redis:6379 \(followups migrate, 2026-12-01T10:05:00Z\)/,
    );
    await expect(p.startWorker()).rejects.toThrow(
      /this deployment moved to redis:\/\/new-redis:6379/,
    );
  });
});
