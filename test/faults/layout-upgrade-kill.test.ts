import { DateTime } from "luxon";
import { afterEach, expect, it } from "vitest";
import { CHANNELS } from "../../src/domain/events.js";
import { FORMER_GLOBAL_TOMBSTONE, KEY_LAYOUT } from "../../src/store/key-layout.js";
import { formerGlobalBase, globalTag, StoreKeys } from "../../src/store/keys.js";
import { scanKeys } from "../../src/store/reshard-store.js";
import { sharedSecret } from "../../src/store/shared-secrets.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { backToFormerGlobalKeys } from "../support/former-layout.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  startPipeline,
  stepRecordOf,
  whereWaiting,
} from "../support/pipeline-harness.js";
import { type RedisCluster, startRedisCluster } from "../support/redis-cluster.js";
import { spawnWorker, type WorkerProcess } from "../support/worker-process.js";
import {
  bySize,
  FAULTS_SEED,
  printFigures,
  quietRedisErrors,
  seededRandom,
  sleep,
  WorkerFleet,
} from "./fault-support.js";

/**
 * The upgrade to key layout 6 moves every global key at start-up. A worker killed -9 in the
 * middle of it must leave a store that a worker of the older layout cannot misread (its opt-out
 * lists already tombstones) and that the next worker of this version finishes: nothing lost.
 */
let cluster: RedisCluster | undefined;
let pipeline: PipelineHarness | undefined;
let fleet: WorkerFleet | undefined;
let victim: WorkerProcess | undefined;
afterEach(async () => {
  await victim?.kill9();
  victim = undefined;
  await fleet?.close();
  fleet = undefined;
  await pipeline?.close().catch(() => undefined);
  pipeline = undefined;
  await cluster?.stop();
  cluster = undefined;
});

const minutesAgo = (minutes: number) =>
  DateTime.utc().minus({ minutes }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

/** SMS references filed beside the input queue, as a busy deployment of layout 5 has them. */
const REFERENCES = { "one Redis": bySize(600_000, 300_000), cluster: bySize(120_000, 60_000) };

it.each(["one Redis", "cluster"] as const)(
  "loses no key and no opt-out when the worker upgrading the key layout is killed -9 midway (%s)",
  { timeout: bySize(300_000, 180_000) },
  async (where) => {
    const random = seededRandom(FAULTS_SEED);
    if (where === "cluster") cluster = await startRedisCluster();
    pipeline = await startPipeline("faults-layout", {
      ...(cluster && { redisUrl: cluster.url, cluster: true }),
    });
    const p = pipeline;
    quietRedisErrors(p);
    const keys = new StoreKeys(p.prefix);
    const boughtAt = minutesAgo(10);
    const tv = (id: string, customerId: string) =>
      purchaseInput({
        id,
        orderId: `ord-${id}`,
        occurredAt: boughtAt,
        customer: { id: customerId },
        items: [item("televisions", "899.00")],
      }) as never;
    await p.publisher.publish(tv("evt-layout-kill", "cus-layout-kill"));
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-layout-kill",
      occurredAt: minutesAgo(5),
      customerId: "cus-layout-off",
      channels: ["email", "sms"],
    });
    await eventProcessed(p, "unsub-layout-kill");
    await eventually(
      async () => (await whereWaiting(p, "evt-layout-kill", "big-ticket.check-in")) ?? undefined,
      "the check-in to wait in the schedule",
    );
    const secret = await sharedSecret(p.redis, p.prefix, "unsubscribe");
    await p.worker?.close();
    p.worker = undefined;

    // A store of layout 5 with many global keys beside the input queue.
    const former = formerGlobalBase(p.prefix);
    const before = await backToFormerGlobalKeys(p.redis, p.prefix, "5");
    const references = REFERENCES[where];
    const referenceKey = (n: number) => `sid:SM${n.toString(16).padStart(32, "0")}`;
    for (let start = 0; start < references; start += 1000) {
      const batch = p.redis.pipeline();
      for (let n = start; n < Math.min(references, start + 1000); n++)
        batch.set(`${former}${referenceKey(n)}`, `{"e":"evt-${n}"}`, "PX", 86_400_000);
      await batch.exec();
    }

    // The first worker of this version starts the upgrade and is killed -9 while it moves keys.
    victim = spawnWorker({ ...p.envVars, HTTP_PORT: "0" });
    const startedAt = Date.now();
    await eventually(
      async () => ((await p.redis.exists(keys.layoutLock())) === 1 ? true : undefined),
      "the upgrade to begin",
      60_000,
    );
    await sleep(200 + random() * 600);
    await victim.kill9();
    const killedAfterMs = Date.now() - startedAt;
    const count = async (pattern: string) => {
      let found = 0;
      for await (const batch of scanKeys(p.redis, pattern)) found += batch.length;
      return found;
    };
    const leftAtKill = await count(`${former}*`);
    const movedAtKill = await count(`${globalTag(p.prefix)}:fu:*`);
    // Midway: some keys moved, some not; the opt-out lists already tombstones.
    expect(movedAtKill).toBeGreaterThan(0);
    expect(leftAtKill).toBeGreaterThan(CHANNELS.length * 2);
    for (const list of ["email", "sms"])
      expect(await p.redis.get(`${former}suppressed:${list}`)).toBe(FORMER_GLOBAL_TOMBSTONE);
    expect(await p.redis.get(keys.layoutVersion())).not.toBe(String(KEY_LAYOUT));

    // The next worker finishes it, once the dead one's lock has run out (a worker started
    // earlier waits for that).
    await eventually(
      async () => ((await p.redis.exists(keys.layoutLock())) === 0 ? true : undefined),
      "the dead worker's lock to run out",
      60_000,
    );
    fleet = new WorkerFleet(p.envVars);
    const resumedAt = Date.now();
    await fleet.spawn();
    const finishedMs = Date.now() - resumedAt;
    expect(await p.redis.get(keys.layoutVersion())).toBe(String(KEY_LAYOUT));
    expect(await count(`${former}*`)).toBe(CHANNELS.length * 2);
    for (const n of [0, Math.floor(references / 2), references - 1]) {
      expect(await p.redis.get(`${globalTag(p.prefix)}:fu:${referenceKey(n)}`)).toBe(
        `{"e":"evt-${n}"}`,
      );
      expect(await p.redis.pttl(`${globalTag(p.prefix)}:fu:${referenceKey(n)}`)).toBeGreaterThan(0);
    }
    expect(await count(`${globalTag(p.prefix)}:fu:sid:*`)).toBe(references);
    expect(await sharedSecret(p.redis, p.prefix, "unsubscribe")).toBe(secret);
    // The opt-out made before the upgrade holds; the check-in still waits.
    await p.publisher.publish(tv("evt-layout-off", "cus-layout-off"));
    await eventProcessed(p, "evt-layout-off");
    expect((await stepRecordOf(p, "evt-layout-off", "big-ticket.thank-you"))?.state).not.toBe(
      "scheduled",
    );
    expect(await whereWaiting(p, "evt-layout-kill", "big-ticket.check-in")).toBe("schedule");
    expect(fleet.crashed()).toEqual([]);
    printFigures(`kill -9 during the key layout upgrade (${where})`, {
      "global keys": before.moved + references,
      "killed after ms": killedAfterMs,
      "moved at the kill": movedAtKill,
      "left at the kill": leftAtKill,
      "the next worker ready after ms": finishedMs,
    });
  },
);
