import { afterEach, expect, it } from "vitest";
import { globalTag, queueTag, shardTag } from "../../src/store/keys.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import {
  clusterNode,
  masterOf,
  type RedisCluster,
  startRedisCluster,
} from "../support/redis-cluster.js";
import {
  bySize,
  deliveredCount,
  makeCheckInsDueSoon,
  printFigures,
  publishBurst,
  quietRedisErrors,
  receivedByKey,
  tally,
  WorkerFleet,
  waitUntilDrained,
  waitUntilSettled,
} from "./fault-support.js";

/**
 * A cluster growing or being rebalanced moves slots between masters while followups runs: Redis's
 * own slot migration (`redis-cli --cluster reshard` / `rebalance` do the same steps), with no
 * change to FOLLOW_UP_SHARDS. Every shard's slot, the input queue's and the global keys' move mid-burst.
 */

let cluster: RedisCluster | undefined;
let pipeline: PipelineHarness | undefined;
let fleet: WorkerFleet | undefined;
afterEach(async () => {
  await fleet?.close();
  fleet = undefined;
  await pipeline?.close().catch(() => undefined);
  pipeline = undefined;
  await cluster?.stop();
  cluster = undefined;
});

const PURCHASES = bySize(300, 100);
const SHARDS = 4;
const WORKERS = 2;
const CONCURRENCY = 8;
const PROVIDER_LATENCY_MS = 200;

/** The masters by port, with their node ids. */
async function masters(anyPort: number): Promise<{ port: number; id: string }[]> {
  const redis = await clusterNode(anyPort);
  try {
    const lines = String(await redis.cluster("NODES"))
      .trim()
      .split("\n");
    return lines
      .map((line) => line.split(" "))
      .filter((fields) => fields[2]?.includes("master"))
      .map((fields) => ({
        id: fields[0] ?? "",
        port: Number((fields[1] ?? "").split("@")[0]?.split(":")[1]),
      }));
  } finally {
    redis.disconnect();
  }
}

/**
 * Moves one slot with its keys from its master to another, as Redis Cluster's resharding does:
 * IMPORTING on the target, MIGRATING on the source, MIGRATE the keys in batches (clients are
 * sent to the target with ASK meanwhile), then the slot is given to the target on every master.
 */
async function moveSlot(
  slot: number,
  from: { port: number; id: string },
  to: { port: number; id: string },
  all: readonly { port: number }[],
): Promise<number> {
  const [source, target] = [await clusterNode(from.port), await clusterNode(to.port)];
  let moved = 0;
  try {
    await target.cluster("SETSLOT", slot, "IMPORTING", from.id);
    await source.cluster("SETSLOT", slot, "MIGRATING", to.id);
    for (;;) {
      const keys = (await source.cluster("GETKEYSINSLOT", slot, 50)) as string[];
      if (keys.length === 0) break;
      await source.call("MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "KEYS", ...keys);
      moved += keys.length;
    }
    for (const master of all) {
      const redis = await clusterNode(master.port);
      await redis.cluster("SETSLOT", slot, "NODE", to.id).finally(() => redis.disconnect());
    }
  } finally {
    source.disconnect();
    target.disconnect();
  }
  return moved;
}

it("loses and repeats no follow-up while every shard's slot and the global one move to another master", {
  timeout: bySize(300_000, 180_000),
}, async () => {
  cluster = await startRedisCluster();
  const c = cluster;
  pipeline = await startPipeline("faults-rebalance", {
    startWorker: false,
    redisUrl: c.url,
    cluster: true,
    shards: SHARDS,
    env: { DELIVERY_CONCURRENCY: String(CONCURRENCY), INTAKE_CONCURRENCY: "8" },
  });
  const p = pipeline;
  quietRedisErrors(p);
  await makeCheckInsDueSoon(p.configDir);
  p.sink.setReplyDelay(PROVIDER_LATENCY_MS);
  p.twilio.setResponseDelay(PROVIDER_LATENCY_MS);
  fleet = new WorkerFleet(p.envVars);
  const f = fleet;
  await Promise.all(Array.from({ length: WORKERS }, () => f.spawn()));

  const steps = await publishBurst(p, "rebalance", PURCHASES);
  const started = Date.now();
  await eventually(
    async () => (deliveredCount(p) >= steps.length * 0.1 ? true : undefined),
    "a tenth of the burst delivered",
    120_000,
  );
  const deliveredAtMove = deliveredCount(p);
  const firstPort = c.nodes[0]?.port ?? 0;
  const all = await masters(firstPort);
  const probe = await clusterNode(firstPort);
  const tags = [
    queueTag(p.prefix),
    globalTag(p.prefix),
    ...Array.from({ length: SHARDS }, (_, n) => shardTag(p.prefix, n, SHARDS)),
  ];
  const slots = [
    ...new Set(
      await Promise.all(tags.map(async (tag) => Number(await probe.cluster("KEYSLOT", tag)))),
    ),
  ];
  probe.disconnect();
  // Each slot to the next master along, one after the other, while the burst is sent.
  let keysMoved = 0;
  for (const slot of slots) {
    const owner = await masterOf(firstPort, slot);
    const index = all.findIndex((master) => master.port === owner);
    const from = all[index];
    const to = all[(index + 1) % all.length];
    if (!from || !to) throw new Error(`slot ${slot} has no master among ${all.length}`);
    keysMoved += await moveSlot(slot, from, to, all);
    expect(await masterOf(firstPort, slot)).toBe(to.port);
  }
  const movedAt = Date.now();
  const deliveredAfterMove = deliveredCount(p);

  const records = await waitUntilSettled(p, steps, bySize(180_000, 90_000));
  await waitUntilDrained(p, 60_000);
  const t = tally(steps, records, receivedByKey(p.sink, p.twilio));
  const events = await p.events.getJobCounts("completed", "failed");
  printFigures("move every slot to another master", {
    purchases: PURCHASES,
    steps: t.steps,
    sends: t.received,
    sent: t.sent,
    duplicates: t.duplicates,
    retries: t.retries,
    "slots moved": slots.length,
    "keys moved": keysMoved,
    "delivered before the move": deliveredAtMove,
    "delivered during the move": deliveredAfterMove - deliveredAtMove,
    "move seconds": ((movedAt - started) / 1000).toFixed(1),
    "error logs": f.errorLogs().length,
  });

  expect(f.crashed(), f.outputTail()).toEqual([]);
  expect(deliveredAfterMove, "the move happened mid-burst").toBeLessThan(steps.length);
  expect(keysMoved).toBeGreaterThan(0);
  expect(events).toEqual({ completed: PURCHASES, failed: 0 });
  expect(t.missing, "steps without a record").toBe(0);
  expect(t.open, "steps left scheduled or sending").toBe(0);
  expect(t.sent, "steps sent").toBe(t.steps);
  expect(t.sentButNotDelivered, "recorded sent but never arrived").toBe(0);
  expect(t.deliveredButNotSent, "arrived but recorded otherwise").toBe(0);
  // Nothing was killed: no send was cut off, so nothing may go twice.
  expect(t.duplicates).toBe(0);
});
