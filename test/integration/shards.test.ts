import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { readEnv } from "../../src/config/env.js";
import { createLogger } from "../../src/logger.js";
import { followUpJobId } from "../../src/queue/names.js";
import { customerShard, StoreKeys } from "../../src/store/keys.js";
import { startWorker, type WorkerHandle } from "../../src/worker.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  channelsFor,
  eventProcessed,
  eventually,
  type PipelineHarness,
  startPipeline,
  stepRecordOf,
  waitForState,
} from "../support/pipeline-harness.js";
import { settledSteps } from "../support/settled-queue.js";
import { httpAddressOf } from "../support/webhooks.js";

/**
 * FOLLOW_UP_SHARDS on one Redis: customers spread over shards, each worker serving all shards or
 * those FOLLOW_UP_SHARDS_SERVED names, and the shard count guarded. The Redis Cluster run spreads
 * shards over masters (redis-cluster.test.ts).
 */

let pipeline: PipelineHarness | undefined;
const others: WorkerHandle[] = [];
afterEach(async () => {
  await Promise.all(others.splice(0).map((worker) => worker.close()));
  await pipeline?.close();
  pipeline = undefined;
});

/** A customer id of each of `count` shards, by shard. */
function customerPerShard(count: number): string[] {
  const ids: string[] = [];
  for (let i = 0; ids.filter(Boolean).length < count; i++) {
    const id = `cus-shards-${i}`;
    const shard = customerShard(id, count);
    ids[shard] ??= id;
  }
  return ids;
}

const buy = (p: PipelineHarness, customerId: string) =>
  p.publisher.publish(
    purchaseInput({
      id: `evt-${customerId}`,
      orderId: `ord-${customerId}`,
      occurredAt: DateTime.utc().minus({ hours: 2 }).toISO() ?? "",
      customer: { id: customerId, email: `${customerId}@example.com` },
      items: [item("kitchenware", "75.00")],
    }) as never,
  );

/** Another worker on the pipeline's Redis and prefix, with some variables changed. */
async function otherWorker(p: PipelineHarness, vars: Record<string, string>) {
  const parsed = readEnv({ ...p.envVars, HTTP_ENABLED: "false", ...vars });
  if (!parsed.ok) throw new Error(parsed.problems.join("; "));
  const logger = createLogger({ level: "silent", pretty: false });
  const worker = await startWorker({
    env: parsed.env,
    logger,
    channels: channelsFor(parsed.env),
    watchConfig: false,
  });
  others.push(worker);
  return worker;
}

describe("follow-ups spread over shards (FOLLOW_UP_SHARDS)", () => {
  it("sends from the shards a worker serves, and the rest once a worker serves them", async () => {
    pipeline = await startPipeline("shards-served", {
      shards: 4,
      env: { FOLLOW_UP_SHARDS_SERVED: "0-1" },
    });
    const p = pipeline;
    const customers = customerPerShard(4);
    for (const id of customers) await buy(p, id);
    for (const id of customers) await eventProcessed(p, `evt-${id}`);
    // Each purchase's state is in its customer's shard, and nowhere else.
    for (const [shard, id] of customers.entries()) expect(await p.shardOf(`evt-${id}`)).toBe(shard);

    // This worker serves shards 0 and 1: their thank-yous go, those of shards 2 and 3 wait.
    await waitForState(p, `evt-${customers[0]}`, "thank-you.thank-you", "sent");
    await waitForState(p, `evt-${customers[1]}`, "thank-you.thank-you", "sent");
    // Their thank-you jobs are due, yet nothing can take them: no worker is connected to the
    // queues of shards 2 and 3 (those of shards 0 and 1 have theirs), and none ever took them.
    for (const [shard, queue] of p.followUpQueues.entries()) {
      const connected = await queue.getWorkersCount();
      if (shard < 2) expect(connected).toBeGreaterThan(0);
      else expect(connected).toBe(0);
    }
    for (const id of customers.slice(2)) {
      const job = await p.followUps.getJob(followUpJobId(`evt-${id}`, "thank-you.thank-you"));
      expect(job).toBeDefined();
      expect(job?.processedOn).toBeUndefined();
      expect(job?.attemptsStarted).toBe(0);
      expect((await stepRecordOf(p, `evt-${id}`, "thank-you.thank-you"))?.state).toBe("scheduled");
    }

    // The worker says so: no worker serves shards 2 and 3.
    const warned = await eventually(
      async () =>
        p.logs.find((line) => String(line.msg).startsWith("no worker serves these shards")),
      "the unserved shards to be named",
    );
    expect(warned).toMatchObject({ level: 40, unserved: [2, 3], shards: 4 });
    const metrics = await (await fetch(`${httpAddressOf(p)}/metrics`)).text();
    expect(metrics).toMatch(/^followups_unserved_shards 2$/m);

    // A worker for shards 2 and 3 sends theirs; each customer got exactly one thank-you.
    await otherWorker(p, { FOLLOW_UP_SHARDS_SERVED: "2-3" });
    for (const id of customers.slice(2))
      await waitForState(p, `evt-${id}`, "thank-you.thank-you", "sent");
    const mails = await p.sink.waitForMessages(4);
    // Every thank-you's job has finished, retries included: none is left that could send again.
    await settledSteps(
      p.followUpQueues,
      customers.map((id) => ({ eventId: `evt-${id}`, stepId: "thank-you.thank-you" })),
      "the thank-yous",
    );
    expect(p.sink.messages.flatMap((mail) => mail.envelope.rcptTo).sort()).toEqual(
      customers.map((id) => `${id}@example.com`).sort(),
    );
    expect(mails).toHaveLength(4);
  });

  it("refuses to start a worker whose shard count differs from the deployment's", async () => {
    pipeline = await startPipeline("shards-count", { shards: 4 });
    await expect(otherWorker(pipeline, { FOLLOW_UP_SHARDS: "2" })).rejects.toThrow(
      "FOLLOW_UP_SHARDS is 2, but this deployment's customers live in 4 shards: set FOLLOW_UP_SHARDS=4",
    );
    await expect(otherWorker(pipeline, { FOLLOW_UP_SHARDS_SERVED: "2-7" })).rejects.toThrow(
      "FOLLOW_UP_SHARDS_SERVED: shard 7 does not exist: FOLLOW_UP_SHARDS is 4, so shards are 0 to 3",
    );
  });

  it("takes a deployment from before shard counts as one shard", async () => {
    pipeline = await startPipeline("shards-before");
    const p = pipeline;
    await buy(p, "cus-before");
    await eventProcessed(p, "evt-cus-before");
    // As the version before recorded nothing: its state is all in shard 0.
    await p.worker?.close();
    p.worker = undefined;
    await p.redis.del(new StoreKeys(p.prefix).shardCount());
    await expect(otherWorker(p, { FOLLOW_UP_SHARDS: "4" })).rejects.toThrow(
      "FOLLOW_UP_SHARDS is 4, but this deployment's customers live in 1 shard: set FOLLOW_UP_SHARDS=1",
    );
    await otherWorker(p, {});
    expect(await p.redis.get(new StoreKeys(p.prefix).shardCount())).toBe("1");
  });

  it("names a malformed FOLLOW_UP_SHARDS_SERVED", () => {
    const bad = readEnv({ FOLLOW_UP_SHARDS_SERVED: "0-3,x" });
    expect(bad.ok).toBe(false);
    if (!bad.ok)
      expect(bad.problems.join("\n")).toContain(
        'FOLLOW_UP_SHARDS_SERVED: expected shard numbers and ranges such as 0-7 or 0,2,4-6, got "x"',
      );
  });
});
