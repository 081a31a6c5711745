import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, expect, inject, it } from "vitest";
import { StoreKeys } from "../../src/store/keys.js";
import {
  ChannelRateLimiter,
  MAX_RATE_WAIT_MS,
  type RateTake,
} from "../../src/store/rate-limiter.js";
import { eventually } from "../support/pipeline-harness.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";

const NOW = 1_800_000_000_000;
let redis: Redis;
let other: Redis;
let prefix: string;
let limiter: ChannelRateLimiter;

beforeAll(() => {
  redis = new Redis(inject("redisUrl"), { maxRetriesPerRequest: 1 });
  other = new Redis(inject("redisUrl"), { maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  await redis.quit();
  await other.quit();
});
beforeEach(() => {
  prefix = uniquePrefix("rate-limiter");
  limiter = new ChannelRateLimiter(redis, prefix);
});
afterEach(async () => {
  await deleteKeysWithPrefix(redis, prefix);
});

const waitOf = (take: RateTake) =>
  take.granted ? take.waitMs : `denied, retry in ${take.retryInMs}`;

async function takes(count: number, rate: number, now: number): Promise<RateTake[]> {
  const results: RateTake[] = [];
  for (let i = 0; i < count; i++) results.push(await limiter.take("email", rate, now));
  return results;
}

it("spaces a channel's sends evenly: at 50/s each take at the same instant waits 20 ms more", async () => {
  const waits = (await takes(10, 50, NOW)).map(waitOf);
  expect(waits).toEqual([0, 20, 40, 60, 80, 100, 120, 140, 160, 180]);
});

it("reserves up to the max wait ahead, then says exactly when asking again can succeed", async () => {
  expect(MAX_RATE_WAIT_MS).toBe(1000);
  // 51 slots lie within 1,000 ms of now at 50/s: waits 0, 20, …, 1000.
  const granted = (await takes(51, 50, NOW)).map(waitOf);
  expect(granted).toEqual(Array.from({ length: 51 }, (_, i) => i * 20));
  const key = new StoreKeys(prefix).rateSlot("email");
  const reserved = await redis.get(key);
  // The 52nd slot is 1,020 ms away: 20 ms too far.
  expect(await limiter.take("email", 50, NOW)).toEqual({ granted: false, retryInMs: 20 });
  expect(await limiter.take("email", 50, NOW + 19)).toEqual({ granted: false, retryInMs: 1 });
  expect(await limiter.take("email", 50, NOW + 19.5)).toEqual({ granted: false, retryInMs: 1 });
  // A denial reserves nothing.
  expect(await redis.get(key)).toBe(reserved);
  expect(await limiter.take("email", 50, NOW + 20)).toEqual({ granted: true, waitMs: 1000 });
});

it("frees slots as time passes and never lets an idle channel bank a burst", async () => {
  expect(waitOf(await limiter.take("email", 50, NOW))).toBe(0);
  expect(waitOf(await limiter.take("email", 50, NOW + 10))).toBe(10);
  // Idle for a minute: the next send goes now, and the one after it 20 ms later, not at once.
  expect(waitOf(await limiter.take("email", 50, NOW + 60_000))).toBe(0);
  expect(waitOf(await limiter.take("email", 50, NOW + 60_000))).toBe(20);
});

it("keeps the spacing exact over many sends", async () => {
  // Then asking 500 ms ahead of every slot: each wait is exactly 500 ms, no drift after 2,000 sends.
  expect(waitOf(await limiter.take("email", 50, NOW))).toBe(0);
  const waits = new Set<number | string>();
  for (let k = 1; k <= 2000; k++)
    waits.add(waitOf(await limiter.take("email", 50, NOW + k * 20 - 500)));
  expect([...waits]).toEqual([500]);
});

it("spaces a rate below one per second 1000/rate ms apart, and fractional intervals exactly", async () => {
  // Half a message per second: one every two seconds.
  expect(waitOf(await limiter.take("email", 0.5, NOW))).toBe(0);
  expect(waitOf(await limiter.take("email", 0.5, NOW + 1500))).toBe(500);
  expect(await limiter.take("email", 0.5, NOW + 1500)).toEqual({
    granted: false,
    retryInMs: 1500,
  });
  expect(waitOf(await limiter.take("email", 0.5, NOW + 3000))).toBe(1000);

  const thirds = (await takes(3, 3, NOW + 10_000)).map(waitOf);
  expect(thirds[0]).toBe(0);
  expect(thirds[1]).toBeCloseTo(1000 / 3, 2);
  expect(thirds[2]).toBeCloseTo(2000 / 3, 2);
});

it("shares slots between limiters on different connections (worker processes)", async () => {
  const second = new ChannelRateLimiter(other, prefix);
  const waits = [
    await limiter.take("sms", 5, NOW),
    await second.take("sms", 5, NOW),
    await limiter.take("sms", 5, NOW + 100),
    await second.take("sms", 5, NOW + 100),
  ].map(waitOf);
  expect(waits).toEqual([0, 200, 300, 500]);
  // Defining the script again on a connection that has it is harmless.
  expect(waitOf(await new ChannelRateLimiter(redis, prefix).take("sms", 5, NOW + 100))).toBe(700);
});

it("keeps each channel's slots apart", async () => {
  expect(waitOf(await limiter.take("email", 1, NOW))).toBe(0);
  expect(waitOf(await limiter.take("sms", 1, NOW))).toBe(0);
  expect(waitOf(await limiter.take("voice", 1, NOW))).toBe(0);
  expect(waitOf(await limiter.take("sms", 1, NOW))).toBe(1000);
  expect(waitOf(await limiter.take("email", 1, NOW))).toBe(1000);
});

it("lets an idle channel's key expire a second after its last reserved slot", async () => {
  const key = new StoreKeys(prefix).rateSlot("email");
  await takes(51, 50, NOW);
  // The next free slot is 1,020 ms ahead; the key outlives it by a second.
  // Read right after the last reservation; the margin is for a slow machine, not the semantics.
  const pttl = await redis.pttl(key);
  expect(pttl).toBeGreaterThan(1500);
  expect(pttl).toBeLessThanOrEqual(2020);

  await redis.del(key);
  await limiter.take("email", 50, Date.now());
  expect(await redis.pttl(key)).toBeGreaterThan(500);
  expect(await redis.pttl(key)).toBeLessThanOrEqual(1020);
  // Time must pass for a TTL to run out; polled (each EXISTS also expires it lazily), not slept.
  await eventually(
    async () => ((await redis.exists(key)) === 0 ? true : undefined),
    "the idle key to expire",
    3000,
  );
  expect(await redis.exists(key)).toBe(0);
});

it("takes the time from the Redis server when none is given, so every worker shares one clock", async () => {
  const first = await limiter.take("email", 1);
  const second = await limiter.take("email", 1);
  expect(waitOf(first)).toBe(0);
  // The second slot is a second after the first, less the moment between the two calls.
  const wait = second.granted ? second.waitMs : -1;
  expect(wait).toBeGreaterThan(500);
  expect(wait).toBeLessThanOrEqual(1000);
  // A worker whose own clock ran ahead would have taken a slot "now"; by the server's clock the
  // third slot is two seconds out, beyond the wait allowed.
  const third = await limiter.take("email", 1);
  expect(third.granted).toBe(false);
});
