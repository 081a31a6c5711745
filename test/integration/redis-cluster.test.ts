import { DateTime } from "luxon";
import { afterEach, describe, expect, inject, it } from "vitest";
import { channelsFromEnv } from "../../src/channels/channels-from-env.js";
import { commandConnection } from "../../src/cli/command-redis.js";
import { readEnv } from "../../src/config/env.js";
import { createLogger } from "../../src/logger.js";
import { customerShard, globalTag, StoreKeys, shardTag } from "../../src/store/keys.js";
import { isCluster } from "../../src/store/redis-client.js";
import { NO_REPLICA_PAUSE_MS } from "../../src/store/replica-wait.js";
import { startWorker } from "../../src/worker.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  startPipeline,
  waitForState,
  whereWaiting,
} from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";
import { httpAddressOf } from "../support/webhooks.js";

/**
 * What only a Redis Cluster shows: runs in the cluster run (vitest.cluster.config.ts, started by
 * `npm test`), where the pipeline, lifecycle and report tests run against the cluster too.
 */
const onCluster = inject("redisCluster");

let pipeline: PipelineHarness | undefined;
let single: RedisServer | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
  await single?.stop();
  single = undefined;
});

describe.runIf(onCluster)("followups on a Redis Cluster", () => {
  it("keeps every key of the store and the queues under its hash tag", async () => {
    pipeline = await startPipeline("cluster-keys");
    const p = pipeline;
    expect(isCluster(p.redis)).toBe(true);
    await p.publisher.publish(
      purchaseInput({
        id: "evt-cluster-tv",
        orderId: "ord-cluster-tv",
        occurredAt: DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
        customer: { id: "cus-cluster-tv" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    await eventProcessed(p, "evt-cluster-tv");
    expect(await whereWaiting(p, "evt-cluster-tv", "big-ticket.check-in")).toBe("schedule");

    if (!isCluster(p.redis)) return;
    const keys: string[] = [];
    const masterOf = new Map<string, number>();
    for (const [master, node] of p.redis.nodes("master").entries()) {
      let cursor = "0";
      do {
        const [next, found] = await node.scan(cursor, "MATCH", `*${p.prefix}*`, "COUNT", 1000);
        cursor = next;
        keys.push(...found);
        for (const key of found) masterOf.set(key, master);
      } while (cursor !== "0");
    }
    const tags = new Set(keys.map((key) => /^\{([^}]+)\}/.exec(key)?.[1] ?? `untagged: ${key}`));
    // Four shards (the cluster run's): the queues' tag, global keys under theirs, and each
    // shard's under its own tag.
    const shardTags = Array.from({ length: p.shards }, (_, n) =>
      shardTag(p.prefix, n, p.shards).slice(1, -1),
    );
    const global = globalTag(p.prefix).slice(1, -1);
    expect(p.shards).toBe(4);
    expect([...tags].filter((tag) => ![p.prefix, global, ...shardTags].includes(tag))).toEqual([]);
    // The two busiest slots of intake, the input queue and the global keys, on two masters.
    const inputMaster = masterOf.get(`{${p.prefix}}:purchase-events:meta`);
    const globalMaster = masterOf.get(new StoreKeys(p.prefix).rulesGenerations());
    expect(inputMaster).toBeDefined();
    expect(globalMaster).toBeDefined();
    expect(globalMaster).not.toBe(inputMaster);
    // The customer's records and their shard's follow-ups queue beside them; the input queue apart.
    const shard = customerShard("cus-cluster-tv", p.shards);
    const tag = shardTag(p.prefix, shard, p.shards);
    expect(keys.some((key) => key.startsWith(`${tag}:fu:e:`))).toBe(true);
    expect(keys).toContain(`{${p.prefix}}:purchase-events:meta`);
    expect(keys.filter((key) => key.includes(":fu:e:") || key.includes(":fu:p:"))).toEqual(
      keys.filter((key) => key.startsWith(`${tag}:fu:`) && /:fu:[ep]:/.test(key)),
    );
  });

  it("spreads customers over the shards, and the shards over the masters", async () => {
    // Sixteen shards: their tags' slots are spread evenly, so every master holds some.
    pipeline = await startPipeline("cluster-spread", { shards: 16 });
    const p = pipeline;
    expect(isCluster(p.redis)).toBe(true);
    if (!isCluster(p.redis)) return;
    const ids = Array.from({ length: 24 }, (_, i) => `cus-spread-${i}`);
    for (const id of ids)
      await p.publisher.publish(
        purchaseInput({
          id: `evt-${id}`,
          orderId: `ord-${id}`,
          occurredAt: DateTime.utc().minus({ hours: 2 }).toISO() ?? "",
          customer: { id, email: `${id}@example.com` },
          items: [item("kitchenware", "75.00")],
        }) as never,
      );
    // Every thank-you goes, exactly once, whatever shard its customer is in.
    for (const id of ids) await waitForState(p, `evt-${id}`, "thank-you.thank-you", "sent");
    const mails = await p.sink.waitForMessages(ids.length);
    expect(mails).toHaveLength(ids.length);
    const shards = new Set(ids.map((id) => customerShard(id, p.shards)));
    expect(shards.size).toBe(13);
    // Each shard's records live on the master that holds its tag's slot: more than one master.
    const mastersWithRecords = new Set<string>();
    for (const node of p.redis.nodes("master")) {
      const [, found] = await node.scan("0", "MATCH", `{${p.prefix}:*}:fu:e:*`, "COUNT", 10_000);
      if (found.length > 0) mastersWithRecords.add(`${node.options.host}:${node.options.port}`);
    }
    expect(mastersWithRecords.size).toBe(3);
  });

  it("waits for a replica after the writes that must survive a failover (REDIS_WAIT_REPLICAS)", async () => {
    const buy = async (p: PipelineHarness, id: string) => {
      await p.publisher.publish(
        purchaseInput({
          id,
          orderId: `ord-${id}`,
          occurredAt: DateTime.utc().minus({ hours: 2 }).toISO() ?? "",
          customer: { id: `cus-${id}` },
          items: [item("kitchenware", "75.00")],
        }) as never,
      );
      return waitForState(p, id, "thank-you.thank-you", "sent");
    };
    const short = (p: PipelineHarness) =>
      p.logs.filter((line) =>
        String(line.msg).startsWith("fewer replicas than REDIS_WAIT_REPLICAS confirmed a write"),
      );

    // Every master has one replica: each wait is confirmed.
    pipeline = await startPipeline("cluster-wait", { env: { REDIS_WAIT_REPLICAS: "1" } });
    await buy(pipeline, "evt-wait-1");
    expect(short(pipeline)).toEqual([]);
    await pipeline.close();

    // Two replicas wanted, one there: the send still goes, each short wait is counted, and the
    // first one on a master logged (its writes then wait for the one replica for 10 s).
    pipeline = await startPipeline("cluster-wait-short", {
      env: { REDIS_WAIT_REPLICAS: "2", REDIS_WAIT_TIMEOUT_MS: "100" },
    });
    const sent = await buy(pipeline, "evt-wait-2");
    expect(sent.attempts).toBe(1);
    // The scheduling and the sent state (counted once its wait has ended, after the state).
    const p = pipeline;
    const counted = await eventually(async () => {
      const metrics = await (await fetch(`${httpAddressOf(p)}/metrics`)).text();
      const count = Number(/^followups_replica_waits_short_total (\d+)$/m.exec(metrics)?.[1]);
      return count >= 2 ? count : undefined;
    }, "both short waits to be counted");
    expect(counted).toBeGreaterThanOrEqual(2);
    expect(short(p)[0]).toEqual(
      expect.objectContaining({ confirmed: 1, wanted: 2, reducedMs: NO_REPLICA_PAUSE_MS }),
    );
  });

  it("refuses to start against a cluster node without REDIS_CLUSTER=true", async () => {
    const firstNode = inject("redisUrl").split(",")[0] ?? "";
    pipeline = await startPipeline("cluster-off", {
      startWorker: false,
      env: { REDIS_URL: firstNode, REDIS_CLUSTER: "false" },
    });
    await expect(pipeline.startWorker()).rejects.toThrow(
      /the Redis at REDIS_URL is a Redis Cluster node: set REDIS_CLUSTER=true/,
    );
  });

  it("refuses REDIS_CLUSTER=true against a single Redis", async () => {
    single = await startRedisServer();
    pipeline = await startPipeline("cluster-on-single", {
      startWorker: false,
      redisUrl: single.url,
      env: { REDIS_CLUSTER: "true" },
    });
    await expect(pipeline.startWorker()).rejects.toThrow(
      /REDIS_CLUSTER=true, but the Redis at REDIS_URL is not a Redis Cluster node/,
    );
  });
});

describe("a Redis Cluster whose nodes were never joined", () => {
  it("is refused in one line by a command and by the worker, at once", async () => {
    single = await startRedisServer({ args: ["--cluster-enabled", "yes"] });
    const env = readEnv({
      REDIS_URL: single.url,
      REDIS_CLUSTER: "true",
      QUEUE_PREFIX: "unjoined",
    });
    if (!env.ok) throw new Error(env.problems.join("; "));
    const refusal =
      /^the Redis Cluster at REDIS_URL has no slots assigned \(cluster_state:fail\): its nodes were never joined; join them/;
    const started = Date.now();
    await expect(commandConnection({ env: env.env, redisSource: "REDIS_URL" })).rejects.toThrow(
      refusal,
    );
    // The worker alone: the harness's own Cluster client would wait on the unjoined node, and
    // closing it there fails ("Connection is closed") depending on where its retries stand.
    await expect(
      startWorker({
        env: env.env,
        logger: createLogger({ level: "silent", pretty: false }),
        channels: channelsFromEnv(env.env),
      }),
    ).rejects.toThrow(refusal);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
