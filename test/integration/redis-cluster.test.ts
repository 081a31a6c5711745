import { DateTime } from "luxon";
import { afterEach, describe, expect, inject, it } from "vitest";
import { isCluster } from "../../src/store/redis-client.js";
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
    for (const node of p.redis.nodes("master")) {
      let cursor = "0";
      do {
        const [next, found] = await node.scan(cursor, "MATCH", `*${p.prefix}*`, "COUNT", 1000);
        cursor = next;
        keys.push(...found);
      } while (cursor !== "0");
    }
    const tags = new Set(keys.map((key) => /^\{([^}]+)\}/.exec(key)?.[1] ?? `untagged: ${key}`));
    expect([...tags].sort()).toEqual([p.prefix, `${p.prefix}:0`]);
    // The store's records, the follow-ups queue beside them (shard 0), the input queue apart.
    expect(keys).toContain(`{${p.prefix}:0}:follow-ups:meta`);
    expect(keys).toContain(`{${p.prefix}}:purchase-events:meta`);
    expect(keys.some((key) => key.startsWith(`{${p.prefix}:0}:fu:e:`))).toBe(true);
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
      p.logs.filter(
        (line) => line.msg === "fewer replicas than REDIS_WAIT_REPLICAS confirmed a write",
      );

    // Every master has one replica: each wait is confirmed.
    pipeline = await startPipeline("cluster-wait", { env: { REDIS_WAIT_REPLICAS: "1" } });
    await buy(pipeline, "evt-wait-1");
    expect(short(pipeline)).toEqual([]);
    await pipeline.close();

    // Two replicas wanted, one there: the send still goes, each short wait is reported.
    pipeline = await startPipeline("cluster-wait-short", {
      env: { REDIS_WAIT_REPLICAS: "2", REDIS_WAIT_TIMEOUT_MS: "100" },
    });
    const sent = await buy(pipeline, "evt-wait-2");
    expect(sent.attempts).toBe(1);
    // The scheduling and the sent state (reported once its wait has ended, after the state).
    const p = pipeline;
    const reported = await eventually(
      async () => (short(p).length >= 2 ? short(p) : undefined),
      "both short waits to be reported",
    );
    expect(reported[0]).toEqual(expect.objectContaining({ confirmed: 1, wanted: 2 }));
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
