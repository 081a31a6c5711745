import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { runSchedule } from "../../src/cli/schedule-command.js";
import { CHANNELS } from "../../src/domain/events.js";
import { KEY_LAYOUT, olderLayoutRemains, TOMBSTONE } from "../../src/store/key-layout.js";
import { formerGlobalBase, StoreKeys } from "../../src/store/keys.js";
import { OrderStore } from "../../src/store/order-store.js";
import type { RedisClient } from "../../src/store/redis-client.js";
import { scanKeys } from "../../src/store/reshard-store.js";
import { sharedSecret } from "../../src/store/shared-secrets.js";
import { captureIo } from "../support/capture-io.js";
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

const CHECK_IN = "big-ticket.check-in";
const THANK_YOU = "big-ticket.thank-you";
let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const minutesAgo = (minutes: number) =>
  DateTime.utc().minus({ minutes }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

/**
 * Gives every store key its name of layout 1 (`<prefix>:fu:…`, the versions before December
 * 2026), value and expiry kept, and forgets the layout mark: the Redis a worker of the version
 * before would have left.
 */
async function backToLayoutOne(
  redis: RedisClient,
  prefix: string,
  orderIds: readonly string[],
): Promise<{ renamed: number; lasting: number }> {
  const keys = new StoreKeys(prefix);
  // Layout 1 linked an order's purchases in the order's own key, not in packed buckets.
  for (const orderId of orderIds) {
    const { events } = await new OrderStore(redis, prefix).get(orderId);
    for (const { eventId } of events) await redis.hset(keys.order(orderId), `e:${eventId}`, "1");
    await redis.pexpire(keys.order(orderId), 400 * 86_400_000);
  }
  for await (const found of scanKeys(redis, `${keys.orderLinks(0).slice(0, -1)}*`))
    await redis.del(...found);
  // Layout 1 had no layout mark, no shard count (it had one shard), and no mark that its
  // address index was packed into buckets.
  await redis.del(
    keys.layoutVersion(),
    keys.layoutLock(),
    keys.shardCount(),
    keys.addressIndexPacked(),
  );
  let renamed = 0;
  // Keys that outlive the test (a rate slot lasts about a second and may be gone at the upgrade).
  let lasting = 0;
  for (const pattern of keys.patterns()) {
    let cursor = "0";
    do {
      const [next, found] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      cursor = next;
      for (const key of found) {
        // Kinds layout 1 did not have: a re-planning walk's generation and its notes, and the
        // mark of the job watch's upgrade.
        if (/\}:fu:(t[gq]|jw)$/.test(key)) {
          await redis.del(key);
          continue;
        }
        const ttl = await redis.pttl(key);
        const legacy = `${prefix}:fu:${key.slice(key.indexOf("}:fu:") + 5)}`;
        if ((await redis.renamenx(key, legacy)) === 0) {
          // Layout 1 had one ledger: the global ledger's hour joins the shard's.
          for (const [field, count] of Object.entries(await redis.hgetall(key)))
            await redis.hincrby(legacy, field, Number(count));
          await redis.del(key);
          continue;
        }
        renamed++;
        if (ttl === -1 || ttl > 60_000) lasting++;
      }
    } while (cursor !== "0");
  }
  return { renamed, lasting };
}

async function legacyKeys(redis: RedisClient, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, found] = await redis.scan(cursor, "MATCH", `${prefix}:fu:*`, "COUNT", 1000);
    cursor = next;
    keys.push(...found);
  } while (cursor !== "0");
  return keys;
}

describe("upgrading a Redis written in the key layout before hash tags", () => {
  it("renames every key at start-up and goes on as if nothing happened", async () => {
    pipeline = await startPipeline("key-layout");
    const p = pipeline;
    const tv = purchaseInput({
      id: "evt-layout-tv",
      orderId: "ord-layout-tv",
      occurredAt: minutesAgo(10),
      customer: { id: "cus-layout-tv" },
      items: [item("televisions", "899.00", { name: "OLED TV" })],
    });
    await p.publisher.publish(tv as never);
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-layout",
      occurredAt: minutesAgo(5),
      customerId: "cus-layout-off",
      channels: ["email"],
    });
    await eventProcessed(p, "unsub-layout");
    await eventually(
      async () => (await whereWaiting(p, "evt-layout-tv", CHECK_IN)) ?? undefined,
      "the check-in to wait in the schedule",
    );
    expect(await whereWaiting(p, "evt-layout-tv", CHECK_IN)).toBe("schedule");
    const secret = await sharedSecret(p.redis, p.prefix, "unsubscribe");
    await p.worker?.close();
    p.worker = undefined;

    // The Redis as the version before left it.
    const before = await backToLayoutOne(p.redis, p.prefix, ["ord-layout-tv"]);
    expect(before.lasting).toBeGreaterThan(10);
    expect(await olderLayoutRemains(p.redis, p.prefix)).toBe(true);
    expect(await stepRecordOf(p, "evt-layout-tv", CHECK_IN)).toBeUndefined();

    await p.startWorker();
    expect(await olderLayoutRemains(p.redis, p.prefix)).toBe(false);
    // Only the tombstones are left under the old names: strings where the opt-outs were, so
    // that a worker of the older version fails its opt-out check instead of sending.
    const left = await legacyKeys(p.redis, p.prefix);
    expect(left.map((key) => key.slice(p.prefix.length)).sort()).toEqual(
      ["email", "email:marketing", "sms", "sms:marketing", "voice", "voice:marketing"].map(
        (list) => `:fu:suppressed:${list}`,
      ),
    );
    for (const key of left) expect(await p.redis.get(key)).toBe(TOMBSTONE);
    await expect(p.redis.sismember(left[0] ?? "", "x")).rejects.toThrow(/WRONGTYPE/);
    const logged = p.logs.find((line) => line.msg === "store keys renamed to the new key layout");
    expect(logged).toEqual(expect.objectContaining({ kept: 0 }));
    expect(logged?.renamed).toBeGreaterThanOrEqual(before.lasting);
    expect(logged?.renamed).toBeLessThanOrEqual(before.renamed);

    // The far check-in still waits where it did, the secret is the same (links already sent
    // keep working), the opt-out holds, and the event id is still known.
    expect(await whereWaiting(p, "evt-layout-tv", CHECK_IN)).toBe("schedule");
    expect(await sharedSecret(p.redis, p.prefix, "unsubscribe")).toBe(secret);
    await p.publisher.publish(tv as never);
    await p.publisher.publish(
      purchaseInput({
        id: "evt-layout-off",
        orderId: "ord-layout-off",
        occurredAt: minutesAgo(10),
        // An address of its own: a purchase under an opted-out id opts its address out too.
        customer: { id: "cus-layout-off", email: "off@example.com" },
        items: [item("televisions", "899.00", { name: "OLED TV" })],
      }) as never,
    );
    await eventProcessed(p, "evt-layout-off");

    // The thank-you of the purchase made before the upgrade (it waited in the schedule: its
    // coalescing window is an hour) goes out once.
    expect(await whereWaiting(p, "evt-layout-tv", THANK_YOU)).toBe("schedule");
    await promoteStep(p, "evt-layout-tv", THANK_YOU);
    const sent = await waitForState(p, "evt-layout-tv", THANK_YOU, "sent");
    expect(sent.attempts).toBe(1);
    // The opt-out made before the upgrade: the new purchase's email steps are never scheduled.
    expect((await stepRecordOf(p, "evt-layout-off", THANK_YOU))?.state).not.toBe("scheduled");
    expect(await whereWaiting(p, "evt-layout-off", THANK_YOU)).toBeUndefined();
    expect(p.sink.messages).toHaveLength(1);
  });

  it("keeps one-shot commands off a Redis that still has the old layout", async () => {
    pipeline = await startPipeline("key-layout-cli", { startWorker: false });
    const p = pipeline;
    Object.assign(process.env, p.commandEnv);
    await p.redis.hset(`${p.prefix}:fu:rules`, "n", "1");
    await expect(
      runSchedule({ config: p.configDir, days: "30", json: true }, captureIo()),
    ).rejects.toThrow(
      /an older key layout \(versions before 4 December 2026\): start a worker of this version once/,
    );
    await p.startWorker();
    const io = captureIo();
    expect(await runSchedule({ config: p.configDir, days: "30", json: true }, io)).toBe(0);
    expect(JSON.parse(io.output())).toEqual({ days: [] });
  });

  it("refuses to rename keys under workers of the older version", async () => {
    pipeline = await startPipeline("key-layout-older");
    const p = pipeline;
    // The running worker stands in for one of the version before, on a Redis of layout 1.
    await p.redis.del(new StoreKeys(p.prefix).layoutVersion());
    await p.redis.hset(`${p.prefix}:fu:rules`, "n", "1");
    await expect(p.startWorker()).rejects.toThrow(
      /worker\(s\) of an older followups version are running on this Redis and prefix: stop them/,
    );
    expect(await p.redis.hget(`${p.prefix}:fu:rules`, "n")).toBe("1");
  });

  it.each([
    ["2", "keep purchases in keys of their own"],
    ["3", "keep order links in keys of their own"],
    ["4", "read step records only as JSON"],
    ["5", "look for global keys beside the input queue"],
  ])("does not start beside workers of layout %s, which %s", async (older) => {
    pipeline = await startPipeline(`key-layout-${older}`);
    const p = pipeline;
    // The running worker stands in for one of the older layout, which marked the Redis so
    // (layouts 2 to 5 beside the input queue).
    await p.redis.del(new StoreKeys(p.prefix).layoutVersion());
    await p.redis.set(`${formerGlobalBase(p.prefix)}layout`, older);
    await expect(p.startWorker()).rejects.toThrow(
      /worker\(s\) of an older followups version are running on this Redis and prefix: stop them/,
    );
    await p.worker?.close();
    p.worker = undefined;
    await p.startWorker();
    expect(await p.redis.get(new StoreKeys(p.prefix).layoutVersion())).toBe(String(KEY_LAYOUT));
    expect(KEY_LAYOUT).toBe(6);
  });

  it("does nothing at the next start", async () => {
    pipeline = await startPipeline("key-layout-again");
    const p = pipeline;
    const renames = () =>
      p.logs.filter((line) => line.msg === "store keys renamed to the new key layout");
    const stop = async () => {
      await p.worker?.close();
      p.worker = undefined;
    };
    // The start that upgrades a Redis the version before left...
    await stop();
    await backToLayoutOne(p.redis, p.prefix, []);
    await p.startWorker();
    expect(renames()).toHaveLength(1);
    // ...leaves nothing for the next start to rename.
    await stop();
    await p.startWorker();
    expect(renames()).toHaveLength(1);
    expect(await p.redis.get(new StoreKeys(p.prefix).layoutVersion())).toBe(String(KEY_LAYOUT));
  });
});

describe("the key layout upgrade of a store that went through layout 1 to 2 earlier", () => {
  it("does not rename the tombstones it left then into the live suppression sets", async () => {
    pipeline = await startPipeline("tomb");
    const p = pipeline;
    const keys = new StoreKeys(p.prefix);
    // An email opt-out exists (so its set exists); nobody ever opted out of SMS or voice.
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-email",
      occurredAt: minutesAgo(5),
      customerId: "cus-email-off",
      channels: ["email"],
    });
    expect(await eventProcessed(p, "unsub-email")).toBe("completed");
    await p.worker?.close();
    p.worker = undefined;

    // What a worker of layout 2/3/4 left after it had upgraded from layout 1 (key-layout.ts
    // leaveTombstones, which it ran then): tombstones under the layout-1 names, layout mark "4".
    for (const channel of CHANNELS)
      for (const name of [
        `${p.prefix}:fu:suppressed:${channel}`,
        `${p.prefix}:fu:suppressed:${channel}:marketing`,
      ])
        await p.redis.set(name, TOMBSTONE, "NX");
    await backToFormerGlobalKeys(p.redis, p.prefix, "4");

    // Upgrading to the current layout.
    await p.startWorker();

    // A user-visible consequence: an SMS opt-out and a purchase are taken in.
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-sms",
      occurredAt: minutesAgo(2),
      customerId: "cus-sms-off",
      channels: ["sms"],
    });
    expect(await eventProcessed(p, "unsub-sms")).toBe("completed");
    await p.publisher.publish(
      purchaseInput({
        id: "evt-tomb-tv",
        orderId: "ord-tomb-tv",
        occurredAt: minutesAgo(10),
        customer: { id: "cus-tomb-tv" },
        items: [item("televisions", "899.00", { name: "OLED TV" })],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-tomb-tv")).toBe("completed");
    expect((await stepRecordOf(p, "evt-tomb-tv", "big-ticket.check-in"))?.state).toBe("scheduled");
    // The live SMS suppression set must not have become the tombstone string.
    expect(await p.redis.type(keys.suppressions("sms"))).not.toBe("string");
  });
});

describe("a store whose earlier upgrade moved a tombstone onto a live suppression set", () => {
  it.each([
    ["already at this layout", String(KEY_LAYOUT)],
    ["upgrading from layout 4", "4"],
  ])("deletes it at start (%s), and opt-outs of that channel work again", async (_, layout) => {
    pipeline = await startPipeline("tomb-repair", { startWorker: false });
    const p = pipeline;
    const keys = new StoreKeys(p.prefix);
    // Layouts 2 to 5 kept the global keys beside the input queue.
    const at = (name: string) =>
      layout === String(KEY_LAYOUT)
        ? name
        : `${formerGlobalBase(p.prefix)}${name.slice(name.indexOf(":fu:") + 4)}`;
    await p.redis.set(at(keys.layoutVersion()), layout);
    await p.redis.set(at(keys.suppressions("sms")), TOMBSTONE);
    await p.redis.sadd(at(keys.suppressions("email")), "k:kept");
    await p.startWorker();
    expect(await p.redis.type(keys.suppressions("sms"))).toBe("none");
    expect(await p.redis.smembers(keys.suppressions("email"))).toEqual(["k:kept"]);
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-repaired",
      occurredAt: minutesAgo(1),
      customerId: "cus-repaired",
      channels: ["sms"],
    });
    expect(await eventProcessed(p, "unsub-repaired")).toBe("completed");
    expect(await p.redis.scard(keys.suppressions("sms"))).toBe(1);
  });
});

describe("the key layout upgrade finished by a second worker after a crash", () => {
  it("still leaves the tombstones when the crashed worker had renamed every key already", async () => {
    pipeline = await startPipeline("tomb-crash");
    const p = pipeline;
    const keys = new StoreKeys(p.prefix);
    await p.worker?.close();
    p.worker = undefined;
    // A layout-1 store: the suppression set under its old name, no layout mark.
    await p.redis.sadd(`${p.prefix}:fu:suppressed:email`, "cus-off");
    await p.redis.del(keys.layoutVersion(), keys.layoutLock());
    // Worker A: renames every key (the loop of renameLegacyKeys), then dies before it leaves the
    // tombstones and marks the layout; its lock runs out.
    expect(
      await p.redis.renamenx(`${p.prefix}:fu:suppressed:email`, keys.suppressions("email")),
    ).toBe(1);
    // Worker B starts and finishes the upgrade.
    await p.startWorker();
    expect(await p.redis.get(keys.layoutVersion())).toBe(String(KEY_LAYOUT));
    // The protection README promises against an older worker started by mistake.
    expect(await p.redis.get(`${p.prefix}:fu:suppressed:email`)).toBe(TOMBSTONE);
  });
});
