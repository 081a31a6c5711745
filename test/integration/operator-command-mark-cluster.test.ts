import type { Cluster } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { markOperatorCommand, OperatorCommandLapsed } from "../../src/store/operator-commands.js";
import { createRedisClient } from "../../src/store/redis-client.js";
import { type RedisCluster, startRedisCluster } from "../support/redis-cluster.js";

/**
 * On a Redis Cluster, a command that a node answers with MOVED (its slot moved, or the client's
 * map of slots is out of date), TRYAGAIN or CLUSTERDOWN is sent again by ioredis, after a delay,
 * without passing through the connection's `sendCommand`. An operator command whose mark lapsed
 * in between must not have that write land: it is refused as any later write of it is. The
 * cluster here is the test's own (three masters, no replicas); the mark's clock is the test's.
 */

let cluster: RedisCluster | undefined;
beforeAll(async () => {
  cluster = await startRedisCluster({ replicas: 0 });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

const PREFIX = "mark-moved";
const PROBE = `{${PREFIX}}:probe`;
const COUNT = `{${PREFIX}}:count`;

/** A master that does not serve PROBE's slot, by its node key as the client names nodes. */
function anotherMaster(redis: Cluster, slot: number): string {
  const owner = (redis as unknown as { slots: string[][] }).slots[slot]?.[0];
  const other = redis
    .nodes("master")
    .map((node) => `${node.options.host}:${node.options.port}`)
    .find((key) => key !== owner);
  if (!other) throw new Error("no other master");
  return other;
}

/** The client believes PROBE's slot is served by another master: its next command gets MOVED. */
async function misroute(redis: Cluster): Promise<void> {
  const slot = Number(await redis.cluster("KEYSLOT", PROBE));
  (redis as unknown as { slots: string[][] }).slots[slot] = [anotherMaster(redis, slot)];
}

it("a write answered MOVED after the command's mark lapsed is not sent again: it fails with the lapse, and nothing is written", {
  timeout: 60_000,
}, async () => {
  const redis = createRedisClient(cluster?.url ?? "", true) as Cluster;
  const reader = createRedisClient(cluster?.url ?? "", true);
  let clock = 0;
  try {
    const mark = await markOperatorCommand(redis, PREFIX, Date.now, { clock: () => clock });
    await redis.set(PROBE, "before");

    await misroute(redis);
    // Sent while the mark is sure to last; the command is held up before the redirect is followed.
    const late = redis.set(PROBE, "late");
    clock += 25_000;
    await expect(late).rejects.toBeInstanceOf(OperatorCommandLapsed);
    expect(mark.lapsed()).toBeInstanceOf(OperatorCommandLapsed);

    expect(await reader.get(PROBE)).toBe("before");
    await mark.release();
  } finally {
    redis.disconnect();
    reader.disconnect();
  }
});

it("a pipeline answered MOVED after the command's mark lapsed is not sent again, and nothing of it is written", {
  timeout: 60_000,
}, async () => {
  const redis = createRedisClient(cluster?.url ?? "", true) as Cluster;
  const reader = createRedisClient(cluster?.url ?? "", true);
  // The pipeline is sent when the cluster client gets to it, not when exec is called: the clock
  // reads 0 when the pipeline's commands are checked before their first send, 25 s from then on.
  let checks: number | undefined;
  const clock = () => (checks !== undefined && checks++ > 0 ? 25_000 : 0);
  try {
    const mark = await markOperatorCommand(redis, PREFIX, Date.now, { clock });
    await redis.set(PROBE, "before");
    await misroute(redis);
    checks = 0;
    const piped = redis.pipeline().set(PROBE, "piped").incr(COUNT).exec();
    const replies = await piped.catch((error: unknown) => [[error, null]]);
    expect(replies?.map(([error]) => error)).toEqual([mark.lapsed(), mark.lapsed()]);
    // Checked when first sent (the clock read 0) and again when the redirect was followed.
    expect(checks).toBeGreaterThanOrEqual(2);
    expect(await reader.get(PROBE)).toBe("before");
    expect(await reader.get(COUNT)).toBeNull();
    expect(mark.lapsed()).toBeInstanceOf(OperatorCommandLapsed);
    await mark.release();
  } finally {
    redis.disconnect();
    reader.disconnect();
  }
});

it("a write answered MOVED while the mark holds is followed to the right master as usual", {
  timeout: 60_000,
}, async () => {
  const redis = createRedisClient(cluster?.url ?? "", true) as Cluster;
  try {
    const mark = await markOperatorCommand(redis, PREFIX, Date.now, { clock: () => 0 });
    await misroute(redis);
    expect(await redis.set(PROBE, "redirected")).toBe("OK");
    expect(await redis.get(PROBE)).toBe("redirected");
    expect(mark.lapsed()).toBeUndefined();
    await mark.release();
  } finally {
    redis.disconnect();
  }
});

it("two marks on one connection released out of order: a MOVED write is checked against the one still held, and the connection is as it was once both are released", {
  timeout: 60_000,
}, async () => {
  const redis = createRedisClient(cluster?.url ?? "", true) as Cluster;
  const reader = createRedisClient(cluster?.url ?? "", true);
  let first = 0;
  let second = 0;
  try {
    const a = await markOperatorCommand(redis, PREFIX, Date.now, { clock: () => first });
    const b = await markOperatorCommand(redis, PREFIX, Date.now, { clock: () => second });
    await redis.set(PROBE, "before");
    await a.release();

    await misroute(redis);
    const late = redis.set(PROBE, "late");
    second += 25_000;
    await expect(late).rejects.toBeInstanceOf(OperatorCommandLapsed);
    expect(await reader.get(PROBE)).toBe("before");
    await b.release();

    // Both released: the first mark's clock (its renewals stopped) no longer guards a retry.
    first += 25_000;
    await misroute(redis);
    expect(await redis.set(PROBE, "after both")).toBe("OK");
    expect(Object.hasOwn(redis, "handleError")).toBe(false);
    expect(Object.hasOwn(redis, "sendCommand")).toBe(false);
    expect(await reader.get(PROBE)).toBe("after both");
  } finally {
    redis.disconnect();
    reader.disconnect();
  }
});
