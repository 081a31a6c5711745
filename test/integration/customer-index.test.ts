import { DateTime } from "luxon";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { addressHash } from "../../src/domain/address-hash.js";
import type { PurchaseCompleted } from "../../src/domain/events.js";
import { createLogger } from "../../src/logger.js";
import { bucketsOfRound, createPackedIndexSweeper } from "../../src/queue/packed-index-sweeper.js";
import { CustomerIndex } from "../../src/store/customer-index.js";
import { idHash, packedPlace, StoreKeys } from "../../src/store/keys.js";
import { OrderStore } from "../../src/store/order-store.js";
import { createRedisClient, type RedisClient } from "../../src/store/redis-client.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { noAddresses } from "../support/order-links.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { deleteKeysWithPrefix, keysMatching, uniquePrefix } from "../support/redis-namespace.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

describe("indexes for people", () => {
  it("finds a customer's purchases, and the customers of an address by its keyed hash only", async () => {
    pipeline = await startPipeline("customer-index");
    const p = pipeline;
    const at = (hoursAgo: number) =>
      DateTime.utc().minus({ hours: hoursAgo }).startOf("second").toISO({
        suppressMilliseconds: true,
      }) ?? "";
    const buy = (id: string, hoursAgo: number, customer: Record<string, unknown>) =>
      purchaseInput({
        id,
        orderId: `ord-${id}`,
        occurredAt: at(hoursAgo),
        items: [item("kitchenware", "75.00")],
        customer,
      });
    await p.publisher.publish(buy("evt-1", 5, { id: "cus-ana" }) as never);
    await p.publisher.publish(buy("evt-2", 3, { id: "cus-ana" }) as never);
    // The same email address at checkout as a guest, with another phone.
    await p.publisher.publish(
      buy("evt-3", 1, { id: "guest-77", email: "Ana@Example.com", phone: "+14155550123" }) as never,
    );
    const { history } = p.stores.of(p.shardOfCustomer("cus-ana"));
    const purchases = await eventually(async () => {
      const listed = await history.purchasesOf("cus-ana");
      return listed.length === 2 ? listed : undefined;
    }, "both purchases of cus-ana to be recorded");
    expect(purchases.map((x) => x.eventId)).toEqual(["evt-2", "evt-1"]);

    const index = new CustomerIndex(p.redis, p.prefix);
    const byEmail = await eventually(async () => {
      const found = await index.customersOf(" ana@example.com");
      return found.length === 2 ? found : undefined;
    }, "both customers of the address");
    expect(byEmail).toEqual(["guest-77", "cus-ana"]);
    expect(await index.customersOf("+442079460958")).toEqual(["cus-ana"]);
    expect(await index.customersOf("+14155550123")).toEqual(["guest-77"]);
    expect(await index.customersOf("nobody@example.com")).toEqual([]);

    // No key names an address, and the index holds customer ids only.
    const keys = [
      ...(await keysMatching(p.redis, `${p.prefix}:*`)),
      ...(await keysMatching(p.redis, `{${p.prefix}*`)),
    ];
    const names = keys.join("\n").toLowerCase();
    for (const personal of ["ana@example.com", "4155550123", "2079460958"])
      expect(names).not.toContain(personal);
    // Three addresses, filed in buckets of many addresses each: an entry is 11 characters of the
    // address's keyed hash and a customer id, and a bucket lives as long as its latest entry:
    // the record of the purchase that filed it (RECORD_RETENTION_DAYS, 90, after its last step,
    // here a thank-you due hours after the purchase), not the two years of a customer's history.
    const indexKeys = keys.filter((key) => /:fu:who:\d+$/.test(key));
    expect(indexKeys.length).toBeGreaterThanOrEqual(1);
    expect(keys.filter((key) => key.includes(":fu:who:h:"))).toEqual([]);
    const entries: string[] = [];
    for (const key of indexKeys) {
      const bucket = await p.redis.hgetall(key);
      entries.push(...Object.keys(bucket).filter((field) => field !== "~"));
      const ttl = await p.redis.pttl(key);
      expect(ttl).toBeGreaterThan(89 * 86_400_000);
      expect(ttl).toBeLessThan(91 * 86_400_000);
    }
    expect(entries).toHaveLength(4);
    for (const entry of entries) expect(entry).toMatch(/^[A-Za-z0-9_-]{11}(cus-ana|guest-77)$/);
  });
});

describe("the packed indexes", () => {
  const DAY = 86_400_000;
  const HOUR = 3_600_000;
  const KEEP = 30 * DAY;
  // The hour now: entries expire in real time by what they carry (T0 + KEEP), so no fixed date.
  const T0 = Math.floor(Date.now() / HOUR) * HOUR;
  let redis: RedisClient;
  let prefix: string;
  const secret = { addressHashSecret: "index-test-secret" };
  /** A purchase as the index reads it: its customer, their addresses, and when. */
  const bought = (customerId: string, email?: string, phone?: string, at = T0) =>
    ({
      customer: { id: customerId, email, phone },
      occurredAt: new Date(at).toISOString(),
    }) as unknown as PurchaseCompleted;

  beforeAll(() => {
    redis = createRedisClient(inject("redisUrl"), inject("redisCluster"), {
      maxRetriesPerRequest: 1,
    });
  });
  afterAll(async () => {
    await redis.quit();
  });
  beforeEach(() => {
    prefix = uniquePrefix("who");
  });
  afterEach(async () => {
    await deleteKeysWithPrefix(redis, prefix);
  });

  /** Customer ids of the entries an address's bucket holds, expired or not. */
  const held = async (address: string) => {
    const { bucket, entry } = packedPlace(addressHash(secret.addressHashSecret, address));
    return Object.keys(await redis.hgetall(new StoreKeys(prefix).addressBucket(bucket)))
      .filter((field) => field.startsWith(entry))
      .map((field) => field.slice(entry.length))
      .sort();
  };

  it("keeps an entry as long as its customer's history after its latest filing, then sweeps it", async () => {
    let clock = T0;
    const index = new CustomerIndex(redis, prefix, { ...secret, now: () => clock });
    const file = async (at: number, customerId: string, email: string, phone?: string) => {
      clock = at;
      await index.remember(bought(customerId, email, phone, at), KEEP, at);
    };
    await file(T0, "cus-old", "shared@example.com");
    await file(T0 + DAY, "cus-new", "shared@example.com", "+14155550100");
    expect(await index.customersOf("shared@example.com")).toEqual(["cus-new", "cus-old"]);
    // Filed again later: latest first again.
    await file(T0 + 2 * DAY, "cus-old", "shared@example.com");
    expect(await index.customersOf("SHARED@example.com ")).toEqual(["cus-old", "cus-new"]);

    // Past its keep, an entry goes at the next write to its bucket (a daily sweep); a filing
    // refreshed within it stays.
    await file(T0 + KEEP + 1.5 * DAY, "cus-third", "shared@example.com");
    expect(await index.customersOf("shared@example.com")).toEqual(["cus-third", "cus-old"]);
    expect(await held("shared@example.com")).toEqual(["cus-old", "cus-third"]);
    // The phone's bucket was not written since: its expired entry waits there for a sweep, but
    // is not found any more.
    expect(await index.customersOf("+14155550100")).toEqual([]);
    expect(await held("+14155550100")).toEqual(["cus-new"]);
  });

  it("sweeps a bucket at most once a day", async () => {
    let clock = T0;
    const index = new CustomerIndex(redis, prefix, { ...secret, now: () => clock });
    const file = async (customerId: string, at: number) => {
      clock = at;
      await index.remember(bought(customerId, "a@example.com", undefined, at), KEEP, at);
    };
    await file("cus-a", T0);
    // Swept a second before cus-a's entry expires: nothing to drop yet.
    await file("cus-b", T0 + KEEP - 1000);
    // Written again within a day of that sweep, the bucket keeps cus-a's expired entry (which is
    // no longer found)...
    await file("cus-c", T0 + KEEP + 2000);
    expect(await held("a@example.com")).toEqual(["cus-a", "cus-b", "cus-c"]);
    expect(await index.customersOf("a@example.com")).toEqual(["cus-c", "cus-b"]);
    // ...which goes at the first write a day after the last sweep.
    await file("cus-d", T0 + KEEP - 1000 + DAY);
    expect(await held("a@example.com")).toEqual(["cus-b", "cus-c", "cus-d"]);
  });

  it("lists an address's customers by their latest purchase there, whatever order intake filed them in", async () => {
    const index = new CustomerIndex(redis, prefix, { ...secret, now: () => T0 });
    // Workers take events concurrently: the later purchase may well be filed first.
    await index.remember(bought("cus-later", "a@example.com", undefined, T0 + 60_000), KEEP, T0);
    await index.remember(bought("cus-earlier", "a@example.com"), KEEP, T0 + 5_000);
    expect(await index.customersOf("a@example.com")).toEqual(["cus-later", "cus-earlier"]);
    // An older purchase of the same customer filed late does not move them back.
    await index.remember(bought("cus-later", "a@example.com"), KEEP, T0 + 9_000);
    expect(await index.customersOf("a@example.com")).toEqual(["cus-later", "cus-earlier"]);
  });

  it("forgets a customer at an address (erasure), and leaves the others", async () => {
    const index = new CustomerIndex(redis, prefix, secret);
    await index.remember(bought("cus-a", "a@example.com", "+14155550101"), KEEP, T0);
    await index.remember(bought("cus-b", "a@example.com", undefined, T0 + 1000), KEEP, T0 + 1000);
    expect(await index.forget("cus-a", ["a@example.com", "+14155550101"])).toBe(2);
    expect(await index.customersOf("a@example.com")).toEqual(["cus-b"]);
    expect(await index.customersOf("+14155550101")).toEqual([]);
  });

  it("moves an earlier version's key per address into its bucket, once, losing no customer", async () => {
    const keys = new StoreKeys(prefix);
    const now = Date.now();
    const hash = addressHash(secret.addressHashSecret, "legacy@example.com");
    const legacyKey = keys.legacyAddressIndex(`h:${hash}`);
    // As versions of key layout 3 and before wrote it: customer id → purchase time, kept KEEP
    // from the latest filing (10 days ago here).
    await redis.hset(
      legacyKey,
      "cus-0",
      String(now - 40 * DAY),
      "cus-1",
      String(now - 25 * DAY),
      "cus-2",
      String(now - 10 * DAY),
    );
    await redis.pexpire(legacyKey, KEEP - 10 * DAY);
    const index = new CustomerIndex(redis, prefix, secret);
    // Read while still in its own key, and erasable there.
    expect(await index.customersOf("legacy@example.com")).toEqual(["cus-2", "cus-1", "cus-0"]);
    await index.remember(bought("cus-3", "legacy@example.com", undefined, now), KEEP, now);
    expect(await index.customersOf("legacy@example.com")).toEqual([
      "cus-3",
      "cus-2",
      "cus-1",
      "cus-0",
    ]);

    expect(await index.packEarlierIndexes(KEEP, () => now)).toBe(1);
    expect(await redis.exists(legacyKey)).toBe(0);
    // Each entry expires its keep after its customer's purchase there (cus-0's has passed: its
    // history is gone too), so the latest purchase still comes first.
    expect(await index.customersOf("legacy@example.com")).toEqual(["cus-3", "cus-2", "cus-1"]);
    const bucket = keys.addressBucket(packedPlace(hash).bucket);
    const pttl = await redis.pttl(bucket);
    expect(pttl).toBeGreaterThan(KEEP - 60_000);
    const [purchased, expiresAt] = (
      (await redis.hget(bucket, `${packedPlace(hash).entry}cus-1`)) ?? ""
    )
      .split(":")
      .map(Number);
    expect(purchased).toBe(Math.floor((now - 25 * DAY) / 1000));
    expect(Math.abs((expiresAt ?? 0) - (now + 5 * DAY))).toBeLessThan(60_000);
    // Done once per deployment: a second run does not scan again.
    expect(await index.packEarlierIndexes(KEEP, () => now)).toBeUndefined();
    // Erasure still finds them.
    expect(await index.forget("cus-1", ["legacy@example.com"])).toBe(1);
    expect(await index.customersOf("legacy@example.com")).toEqual(["cus-3", "cus-2"]);
  });

  it("places addresses by the first 14 bits of their hash, and the rest names them in the bucket", () => {
    expect(packedPlace("AAAbcdefghijklmnopqrst")).toEqual({ bucket: 0, entry: "Abcdefghijk" });
    expect(packedPlace(`__${"_".repeat(20)}`).bucket).toBe(16383);
    // 14 bits: the third character's two high bits count, its four low bits do not.
    expect(packedPlace("AAwAAAAAAAAAAAAAAAAAAA").bucket).toBe(3);
    expect(packedPlace("AAPAAAAAAAAAAAAAAAAAAA").bucket).toBe(0);
    expect(() => packedPlace("AB")).toThrow(RangeError);
  });

  it("walks every bucket once a day and drops what expired, also from buckets not written again", async () => {
    const rounds = Array.from({ length: 24 }, (_, round) => bucketsOfRound(round));
    expect(rounds.flat()).toEqual(Array.from({ length: 16_384 }, (_, i) => i));

    const keys = new StoreKeys(prefix);
    const silent = createLogger({ level: "silent", pretty: false });
    // An address whose entries all expire at T0 + DAY, an order link that lives longer, and
    // another order's that expires, in the same bucket.
    const index = new CustomerIndex(redis, prefix, { addressHashSecret: "sweep-secret" });
    await index.remember(
      {
        customer: { id: "cus-gone", email: "gone@example.com" },
        occurredAt: new Date(T0).toISOString(),
      } as unknown as PurchaseCompleted,
      DAY,
      T0,
    );
    const gone = keys.addressBucket(
      packedPlace(addressHash("sweep-secret", "gone@example.com")).bucket,
    );
    const orders = new OrderStore(redis, prefix);
    await orders.linkPurchase("ord-kept", "evt-kept", 0, 30 * DAY, T0, noAddresses(prefix));
    const { bucket, entry } = packedPlace(idHash("ord-kept"));
    const links = keys.orderLinks(bucket);
    await redis.hset(links, `ZZZZZZZZZZZevt-old`, `s0:${T0 + DAY}`);

    const sweeper = createPackedIndexSweeper({ redis, prefix, now: () => T0, logger: silent });
    // The round of the hour a bucket falls in sweeps it; at T0 + 2 days, both expired entries go.
    const roundOf = (b: number) => rounds.findIndex((buckets) => buckets.includes(b));
    const at = (round: number) => Math.floor((T0 + 2 * DAY) / DAY) * DAY + round * HOUR;
    const goneBucket = packedPlace(addressHash("sweep-secret", "gone@example.com")).bucket;
    let dropped = 0;
    for (const round of new Set([roundOf(goneBucket), roundOf(bucket)]))
      dropped += await sweeper.sweepRound(at(round));
    expect(dropped).toBe(2);
    expect(await redis.exists(gone)).toBe(0);
    expect(Object.keys(await redis.hgetall(links)).sort()).toEqual([`${entry}evt-kept`, "~"]);
    expect((await orders.get("ord-kept")).eventIds).toEqual(["evt-kept"]);
    // One worker sweeps an hour's round: another in the same hour skips it, the next day's
    // round of the same buckets sweeps again.
    const other = createPackedIndexSweeper({ redis, prefix, now: () => T0, logger: silent });
    await redis.hset(links, `YYYYYYYYYYYevt-older`, `s0:${T0 + DAY}`);
    expect(await other.sweepRound(at(roundOf(bucket)) + 60_000)).toBe(0);
    expect(await redis.hexists(links, `YYYYYYYYYYYevt-older`)).toBe(1);
    expect(await other.sweepRound(at(roundOf(bucket)) + DAY)).toBe(1);
    expect(await redis.hexists(links, `YYYYYYYYYYYevt-older`)).toBe(0);
  });
});
