import { Redis } from "ioredis";
import { afterEach, expect, it } from "vitest";
import {
  NO_REPLICA_PAUSE_MS,
  ReplicaWait,
  type ReplicaWaitSettings,
  replicaWaitsWithin,
  type ShortWait,
} from "../../src/store/replica-wait.js";
import { eventually } from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";

// Private servers: the test counts the WAIT commands a Redis received.
const servers: RedisServer[] = [];
const clients: Redis[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  await Promise.all(servers.splice(0).map((server) => server.stop()));
});

async function server(
  args: readonly string[] = [],
): Promise<{ server: RedisServer; redis: Redis }> {
  const started = await startRedisServer({ args: ["--repl-diskless-sync-delay", "0", ...args] });
  servers.push(started);
  const redis = new Redis(started.url, { maxRetriesPerRequest: 1 });
  // The replica is killed and started again: its client reconnects by itself.
  redis.on("error", () => undefined);
  clients.push(redis);
  return { server: started, redis };
}

async function waitsReceived(redis: Redis): Promise<number> {
  const stats = await redis.info("commandstats");
  return Number(/cmdstat_wait:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

/** A ReplicaWait on a clock the test moves, and the short waits it reports. */
function testWait(redis: Redis, settings: ReplicaWaitSettings) {
  const clock = { now: 1_000_000 };
  const shorts: ShortWait[] = [];
  const wait = new ReplicaWait(
    redis,
    settings,
    (s) => shorts.push(s),
    () => clock.now,
  );
  return { wait, shorts, clock };
}

/** A write, then the wait after it, as the stores do. */
async function protectedWrite(redis: Redis, wait: ReplicaWait, n: number): Promise<number> {
  await redis.set(`order:${n}`, "stored");
  return wait.after(`order:${n}`);
}

it("waits once, not on every write, while the master has no replica; waits again after the pause", async () => {
  const { redis } = await server();
  const { wait, shorts, clock } = testWait(redis, { replicas: 1, timeoutMs: 50 });

  for (let n = 0; n < 5; n++) expect(await protectedWrite(redis, wait, n)).toBe(0);
  // One WAIT timed out; the four writes after it stood on the master alone, each reported.
  expect(await waitsReceived(redis)).toBe(1);
  expect(shorts).toEqual([
    { confirmed: 0, wanted: 1, waited: true, pauseMs: NO_REPLICA_PAUSE_MS },
    ...Array.from({ length: 4 }, () => ({ confirmed: 0, wanted: 1, waited: false })),
  ]);

  clock.now += NO_REPLICA_PAUSE_MS - 1;
  await protectedWrite(redis, wait, 5);
  expect(await waitsReceived(redis)).toBe(1);
  clock.now += 1;
  await protectedWrite(redis, wait, 6);
  expect(await waitsReceived(redis)).toBe(2);
});

it("sends one WAIT, not one per write, when writes arrive together on a master without a replica", async () => {
  const { redis } = await server();
  const shorts: ShortWait[] = [];
  const wait = new ReplicaWait(redis, { replicas: 1, timeoutMs: 200 }, (s) => shorts.push(s));
  // Eight sends at once, as the worker runs them: their WAITs would run one after another.
  const confirmed = await Promise.all(
    Array.from({ length: 8 }, (_, n) => protectedWrite(redis, wait, n)),
  );
  expect(confirmed).toEqual(Array(8).fill(0));
  expect(await waitsReceived(redis)).toBe(1);
  expect(shorts.filter((s) => s.waited)).toHaveLength(1);
  expect(shorts).toHaveLength(8);
});

it("waits on every write while a replica confirms, pauses when it is gone, and waits again once it is back", {
  timeout: 30_000,
}, async () => {
  const master = await server();
  const replica = await server(["--replicaof", "127.0.0.1", String(master.server.port)]);
  // Synced on both sides: the replica's link is up and the master counts it online (it counts a
  // replica's acknowledgements for WAIT only then).
  const linkUp = async () =>
    /master_link_status:up/.test(await replica.redis.info("replication")) &&
    /slave0:.*state=online/.test(await master.redis.info("replication"))
      ? true
      : undefined;
  await eventually(linkUp, "the replica to sync", 10_000);
  const { wait, shorts, clock } = testWait(master.redis, { replicas: 1, timeoutMs: 1_000 });

  for (let n = 0; n < 3; n++) expect(await protectedWrite(master.redis, wait, n)).toBe(1);
  expect(await waitsReceived(master.redis)).toBe(3);
  expect(shorts).toEqual([]);

  // The replica dies: the next wait times out, the writes after it are not waited for.
  const replicaDown = replica.server.restart({ signal: "SIGKILL", downMs: 5_000 });
  await eventually(
    async () =>
      /connected_slaves:0/.test(await master.redis.info("replication")) ? true : undefined,
    "the master to see its replica gone",
    10_000,
  );
  expect(await protectedWrite(master.redis, wait, 3)).toBe(0);
  expect(await protectedWrite(master.redis, wait, 4)).toBe(0);
  expect(await waitsReceived(master.redis)).toBe(4);
  expect(shorts.map((s) => s.waited)).toEqual([true, false]);

  // Back and synced; once the pause is over, writes are waited for and confirmed again, and a
  // confirmed wait ends the pause for good.
  await replicaDown;
  await eventually(linkUp, "the replica to sync again", 10_000);
  clock.now += NO_REPLICA_PAUSE_MS;
  for (let n = 5; n < 8; n++) expect(await protectedWrite(master.redis, wait, n)).toBe(1);
  expect(await waitsReceived(master.redis)).toBe(7);
  expect(await master.redis.get("order:4")).toBe("stored");
  expect(await replica.redis.get("order:7")).toBe("stored");
});

/** A master with one replica, synced on both sides. */
async function masterWithReplica(): Promise<{ master: Redis; replica: Redis }> {
  const master = await server();
  const replica = await server(["--replicaof", "127.0.0.1", String(master.server.port)]);
  await eventually(
    async () =>
      /master_link_status:up/.test(await replica.redis.info("replication")) &&
      /slave0:.*state=online/.test(await master.redis.info("replication"))
        ? true
        : undefined,
    "the replica to sync",
    10_000,
  );
  return { master: master.redis, replica: replica.redis };
}

it("with fewer replicas than wanted, waits once for the missing one, then only for the one there; all again after the pause", {
  timeout: 30_000,
}, async () => {
  const { master, replica } = await masterWithReplica();
  // REDIS_WAIT_REPLICAS=2 against a master with one replica.
  const { wait, shorts, clock } = testWait(master, { replicas: 2, timeoutMs: 4_000 });
  const first = performance.now();
  expect(await protectedWrite(master, wait, 0)).toBe(1);
  expect(performance.now() - first).toBeGreaterThanOrEqual(3_900);
  // Before, every one of these waited the whole timeout for the replica that is not there: all
  // five together now take less than one.
  const started = performance.now();
  for (let n = 1; n < 6; n++) expect(await protectedWrite(master, wait, n)).toBe(1);
  expect(performance.now() - started).toBeLessThan(3_900);
  // Each was waited for (WAIT 1), so the replica has every one of them.
  expect(await waitsReceived(master)).toBe(6);
  for (let n = 0; n < 6; n++) expect(await replica.get(`order:${n}`)).toBe("stored");
  expect(shorts).toEqual([
    { confirmed: 1, wanted: 2, waited: true, pauseMs: NO_REPLICA_PAUSE_MS },
    ...Array.from({ length: 5 }, () => ({ confirmed: 1, wanted: 2, waited: true, waitedFor: 1 })),
  ]);
  // After the pause, a write waits for both again (and again only the timeout tells).
  clock.now += NO_REPLICA_PAUSE_MS;
  const after = performance.now();
  expect(await protectedWrite(master, wait, 6)).toBe(1);
  expect(performance.now() - after).toBeGreaterThanOrEqual(3_900);
});

it("ends all the waits of work run within replicaWaitsWithin by its bound, however long REDIS_WAIT_TIMEOUT_MS", {
  timeout: 30_000,
}, async () => {
  const { master } = await masterWithReplica();
  // Two wanted, one there: a wait for both lasts its whole time.
  const { wait, shorts, clock } = testWait(master, { replicas: 2, timeoutMs: 5_000 });
  const started = performance.now();
  const confirmed = await replicaWaitsWithin(600, async () => [
    await protectedWrite(master, wait, 0),
    await protectedWrite(master, wait, 1),
    await protectedWrite(master, wait, 2),
  ]);
  expect(performance.now() - started).toBeLessThan(1_500);
  // The first wait took the time there was (its replica's acknowledgement may come after it on
  // a loaded machine: 1 or 0 confirmed); the writes after it were not waited for.
  const [first = -1] = confirmed;
  expect([0, 1]).toContain(first);
  expect(confirmed.slice(1)).toEqual([0, 0]);
  expect(shorts).toEqual([
    { confirmed: first, wanted: 2, waited: true, pauseMs: NO_REPLICA_PAUSE_MS },
    { confirmed: 0, wanted: 2, waited: false },
    { confirmed: 0, wanted: 2, waited: false },
  ]);
  // Outside it, once the pause is over, a wait for both takes REDIS_WAIT_TIMEOUT_MS as before.
  clock.now += NO_REPLICA_PAUSE_MS;
  const outside = performance.now();
  expect(await protectedWrite(master, wait, 3)).toBe(1);
  expect(performance.now() - outside).toBeGreaterThanOrEqual(4_900);
});
