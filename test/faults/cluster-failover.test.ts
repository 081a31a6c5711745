import { afterEach, expect, it } from "vitest";
import { globalTag, queueTag, shardTag } from "../../src/store/keys.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import {
  clusterNode,
  masterOf,
  masterServing,
  type RedisCluster,
  startRedisCluster,
  waitUntilClusterReady,
} from "../support/redis-cluster.js";
import { httpAddressOf } from "../support/webhooks.js";
import {
  bySize,
  countInState,
  deliveredCount,
  hoursAgo,
  makeCheckInsDueSoon,
  printFigures,
  publishBurst,
  quietRedisErrors,
  readRecords,
  receivedByKey,
  tally,
  WorkerFleet,
  waitUntilDrained,
  waitUntilSettled,
} from "./fault-support.js";

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
const WORKERS = 2;
const CONCURRENCY = 8;
const PROVIDER_LATENCY_MS = 200;

/**
 * The killed master (of the customers' shard, of the input queue's slot, or of the global keys:
 * opt-outs, orders, rate limits) comes back 15 s later
 * (as a replica), or never: its replica is left alone. Or it comes back, and in a second burst the
 * replica that replaced it dies too: two failovers of one shard in a row, the first victim serving
 * as its master again. Or it held the input queue, and a second burst is published after the
 * failover: the workers must go on taking events in from the promoted replica.
 */
const OUTCOMES = [
  { name: "comes back as a replica", victim: "shard", downMs: 15_000, again: false },
  { name: "never comes back", victim: "shard", downMs: undefined, again: false },
  { name: "comes back, then its successor dies too", victim: "shard", downMs: 15_000, again: true },
  { name: "held the input queue", victim: "input", downMs: 15_000, again: false },
  { name: "held the global keys", victim: "global", downMs: 15_000, again: false },
] as const;

it.each(OUTCOMES)(
  "loses no follow-up and no opt-out when a master dies mid-burst and its replica takes over: the dead one $name",
  {
    timeout: bySize(300_000, 180_000),
  },
  async ({ name, victim: victimOf, downMs, again }) => {
    cluster = await startRedisCluster();
    const c = cluster;
    pipeline = await startPipeline("faults-failover", {
      startWorker: false,
      redisUrl: c.url,
      cluster: true,
      env: {
        DELIVERY_CONCURRENCY: String(CONCURRENCY),
        INTAKE_CONCURRENCY: "8",
        REDIS_WAIT_REPLICAS: "1",
        REDIS_WAIT_TIMEOUT_MS: "250",
      },
    });
    const p = pipeline;
    quietRedisErrors(p);
    await makeCheckInsDueSoon(p.configDir);
    p.sink.setReplyDelay(PROVIDER_LATENCY_MS);
    p.twilio.setResponseDelay(PROVIDER_LATENCY_MS);

    fleet = new WorkerFleet(p.envVars);
    const f = fleet;
    await Promise.all(Array.from({ length: WORKERS }, () => f.spawn()));

    // An opt-out taken in before the failover must hold after it.
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-failover",
      occurredAt: hoursAgo(3),
      customerId: "cus-failover-optout",
      channels: ["email", "sms"],
    });
    const suppressions = new SuppressionList(p.redis, p.prefix);
    await eventually(
      async () =>
        (await suppressions.isSuppressed("email", { customerId: "cus-failover-optout" }))
          ? true
          : undefined,
      "the opt-out to be recorded",
      30_000,
    );

    const steps = await publishBurst(p, "failover", PURCHASES);
    const started = Date.now();
    // The master of the customers' shard (their records, the schedule and the follow-ups queue),
    // of the input queue and the owner queues, or of the global keys (on another master than the
    // input queue: keys.ts globalTag).
    const firstPort = c.nodes[0]?.port ?? 0;
    const victimSlot = {
      shard: shardTag(p.prefix, 0),
      input: queueTag(p.prefix),
      global: globalTag(p.prefix),
    }[victimOf];
    const victimPort = await masterOf(firstPort, victimSlot);
    const globalOnVictim = (await masterOf(firstPort, globalTag(p.prefix))) === victimPort;
    const inputOnVictim = (await masterOf(firstPort, queueTag(p.prefix))) === victimPort;
    const victim = c.nodes.find((node) => node.port === victimPort);
    if (!victim) throw new Error(`no node on port ${victimPort}`);
    await eventually(
      async () => (deliveredCount(p) >= steps.length * 0.2 ? true : undefined),
      "a fifth of the burst delivered",
      120_000,
    );
    const deliveredAtKill = deliveredCount(p);
    // Down for 15 s, then back: it rejoins as the new master's replica. Or gone for good: the
    // promoted master has no replica, so each write that waits for one waits the whole timeout.
    const comeback =
      downMs === undefined ? victim.kill() : victim.restart({ signal: "SIGKILL", downMs });
    const killedAt = Date.now();
    // A replica is promoted once the others agree the master is gone (cluster-node-timeout 2 s).
    const survivor = c.nodes.find((node) => node.port !== victimPort)?.port ?? 0;
    await eventually(
      async () => {
        // No master at all while the others agree the old one failed: not taken over yet.
        const master = await masterServing(survivor, victimSlot);
        return master !== undefined && master !== victimPort ? true : undefined;
      },
      "a replica to take over",
      60_000,
    );
    const failoverMs = Date.now() - killedAt;
    const sendingAfter = countInState(await readRecords(p.store, steps), "sending");

    let all = steps;
    const second: Record<string, number> = {};
    if (victimOf === "input") {
      // Events published to the promoted replica, while the dead master is still down, are taken
      // in like the first burst's.
      const more = await publishBurst(p, "failover-input", PURCHASES, undefined, PURCHASES);
      all = [...steps, ...more];
      const publishedAt = Date.now();
      await eventually(
        async () =>
          ((await p.events.getJobCounts("completed")).completed ?? 0) >= 2 * PURCHASES + 1
            ? true
            : undefined,
        "the second burst taken in",
        120_000,
      );
      second["second burst taken in ms"] = Date.now() - publishedAt;
    }
    await comeback;
    if (again) {
      // Once the first victim serves as a replica again (synced), a second burst, and its new
      // master dies mid-burst: the first victim takes the shard back.
      await waitUntilClusterReady(c.nodes);
      const successorPort = await masterOf(victimPort, shardTag(p.prefix, 0));
      const successor = c.nodes.find((node) => node.port === successorPort);
      if (!successor || successorPort === victimPort) {
        throw new Error(`the shard's master after the failover is ${successorPort}`);
      }
      const more = await publishBurst(p, "failover-again", PURCHASES, undefined, PURCHASES);
      all = [...steps, ...more];
      const before = deliveredCount(p);
      await eventually(
        async () => (deliveredCount(p) >= before + more.length * 0.2 ? true : undefined),
        "a fifth of the second burst delivered",
        120_000,
      );
      second["delivered at second kill"] = deliveredCount(p);
      const back = successor.restart({ signal: "SIGKILL", downMs: 15_000 });
      const at = Date.now();
      await eventually(
        async () =>
          (await masterServing(victimPort, shardTag(p.prefix, 0))) === victimPort
            ? true
            : undefined,
        "the first victim to take the shard back",
        60_000,
      );
      second["second failover ms"] = Date.now() - at;
      await back;
    }
    const records = await waitUntilSettled(p, all, bySize(180_000, 90_000));
    const elapsedMs = Date.now() - started;
    await waitUntilDrained(p, 60_000);
    const t = tally(all, records, receivedByKey(p.sink, p.twilio));
    const events = await p.events.getJobCounts("completed", "failed");
    const optOutHolds = await suppressions.isSuppressed("email", {
      customerId: "cus-failover-optout",
    });
    printFigures(`kill -9 a cluster master that ${name}`, {
      purchases: PURCHASES,
      steps: t.steps,
      sends: t.received,
      sent: t.sent,
      duplicates: t.duplicates,
      takeovers: t.takeovers,
      retries: t.retries,
      "delivered at kill": deliveredAtKill,
      "global slot on the victim": String(globalOnVictim),
      "input queue on the victim": String(inputOnVictim),
      "failover ms": failoverMs,
      "sending after failover": sendingAfter,
      ...second,
      "error logs": f.errorLogs().length,
      seconds: (elapsedMs / 1000).toFixed(1),
    });

    expect(f.crashed(), f.outputTail()).toEqual([]);
    expect(deliveredAtKill).toBeLessThan(steps.length);
    const kills = again ? 2 : 1;
    expect(second["delivered at second kill"] ?? 0).toBeLessThan(all.length);
    expect(events).toEqual({ completed: (all.length / steps.length) * PURCHASES + 1, failed: 0 });
    expect(t.missing, "steps without a record").toBe(0);
    expect(t.open, "steps left scheduled or sending").toBe(0);
    expect(t.sent, "steps sent").toBe(t.steps);
    expect(t.sentButNotDelivered, "recorded sent but never arrived").toBe(0);
    expect(t.deliveredButNotSent, "arrived but recorded otherwise").toBe(0);
    // A duplicate needs a send cut off after the provider accepted it: at most those in flight.
    expect(t.duplicates).toBeLessThanOrEqual(WORKERS * CONCURRENCY * kills);
    expect(optOutHolds, "the opt-out after the failover").toBe(true);
  },
);

it("/readyz answers 503 while a shard of the cluster has no master, and 200 once it is back", {
  timeout: 90_000,
}, async () => {
  cluster = await startRedisCluster();
  const c = cluster;
  pipeline = await startPipeline("faults-readyz", { redisUrl: c.url, cluster: true });
  const p = pipeline;
  quietRedisErrors(p);
  const readyz = async () => {
    const response = await fetch(`${httpAddressOf(p)}/readyz`);
    return { status: response.status, body: (await response.json()) as unknown };
  };
  expect((await readyz()).status).toBe(200);

  // A master (not the one of the input queue) and its replica, both down: its slots are served
  // by no one, though every other node still answers.
  const firstPort = c.nodes[0]?.port ?? 0;
  const inputPort = await masterOf(firstPort, queueTag(p.prefix));
  const roles = await Promise.all(
    c.nodes.map(async (node) => {
      const redis = await clusterNode(node.port);
      const replication = await redis.info("replication").finally(() => redis.disconnect());
      const masterPort = /master_port:(\d+)/.exec(replication)?.[1];
      return { port: node.port, masterPort: masterPort ? Number(masterPort) : undefined };
    }),
  );
  const shardMaster = roles.find((r) => r.masterPort === undefined && r.port !== inputPort)?.port;
  const shardPorts = [shardMaster, roles.find((r) => r.masterPort === shardMaster)?.port];
  const down = c.nodes.filter((node) => shardPorts.includes(node.port));
  expect(down).toHaveLength(2);
  const back = Promise.all(down.map((node) => node.restart({ signal: "SIGKILL", downMs: 20_000 })));
  // Once the surviving nodes know the shard is gone, every probe says so (a PING would still
  // answer PONG from any of them).
  const survivor = c.nodes.find((node) => !shardPorts.includes(node.port))?.port ?? 0;
  await eventually(
    async () => {
      const redis = await clusterNode(survivor);
      const info = String(await redis.cluster("INFO").finally(() => redis.disconnect()));
      return /cluster_state:fail/.test(info) ? true : undefined;
    },
    "the cluster to see the shard down",
    15_000,
  );
  for (let probe = 0; probe < 5; probe++) {
    const answer = await readyz();
    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ ready: false, checks: { redis: false } });
  }
  await back;
  await waitUntilClusterReady(c.nodes);
  await eventually(
    async () => ((await readyz()).status === 200 ? true : undefined),
    "/readyz 200 with the shard back",
    30_000,
  );
});
