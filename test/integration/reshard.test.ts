import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { Queue } from "bullmq";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runErase } from "../../src/cli/erase-command.js";
import { withOperatorTools } from "../../src/cli/operator-session.js";
import { runReshard } from "../../src/cli/reshard-command.js";
import { createLogger } from "../../src/logger.js";
import { FollowUpMetrics } from "../../src/metrics.js";
import { takeMoveLease } from "../../src/operations/move-lease.js";
import { createOperatorTools } from "../../src/operations/operator-tools.js";
import { reshard } from "../../src/operations/reshard.js";
import { watchStepsOfEarlierVersions } from "../../src/queue/job-watch-upgrade.js";
import { createLostJobs } from "../../src/queue/lost-jobs.js";
import {
  FOLLOW_UPS_QUEUE,
  type FollowUpJobData,
  followUpJobId,
  PURCHASE_EVENTS_QUEUE,
  queuePrefix,
} from "../../src/queue/names.js";
import { scheduleEntry } from "../../src/store/follow-up-schedule.js";
import { bucketOf, customerShard, StoreKeys, shardScope } from "../../src/store/keys.js";
import { isCluster } from "../../src/store/redis-client.js";
import { scanKeys, shardOfIdHash } from "../../src/store/reshard-store.js";
import { Shards, shardStores } from "../../src/store/shards.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import type { WorkerHandle } from "../../src/worker.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput, shippedRules } from "../support/fixtures.js";
import {
  failThankYou,
  operatorCommandAtWork,
  pendingTotal,
  workerFromEnv,
} from "../support/operator-runs.js";
import { keysHolding } from "../support/personal-data-scan.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
} from "../support/pipeline-harness.js";
import { startRedisServer } from "../support/redis-server.js";
import { settledSteps } from "../support/settled-queue.js";

/**
 * `followups reshard`: a deployment's shard count changes with its workers stopped, and every
 * customer, purchase, waiting job, scheduled step, count and reference follows: after the change a
 * worker of the new count sends what was pending exactly once, a repeat customer's history is
 * there, a refund finds its order, a failed follow-up is still listed, and the counts add up as
 * before. Runs on one Redis and, in the cluster run, on a Redis Cluster.
 */

const BIG_THANKS = "big-ticket.thank-you";
const CHECK_IN = "big-ticket.check-in";
const CUSTOMERS = Array.from({ length: 8 }, (_, i) => `cus-reshard-${i}`);

let pipeline: PipelineHarness | undefined;
const workers: WorkerHandle[] = [];
const savedEnv = { ...process.env };
afterEach(async () => {
  process.env = { ...savedEnv };
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
  await pipeline?.close();
  pipeline = undefined;
});

/** A worker on the pipeline's Redis and prefix with FOLLOW_UP_SHARDS = `shards`. */
function workerWith(p: PipelineHarness, shards: number): Promise<WorkerHandle> {
  return workerFromEnv({ ...p.envVars, FOLLOW_UP_SHARDS: String(shards) }, workers);
}

/** `followups reshard` as an operator runs it, with the pipeline's environment. */
async function reshardTo(p: PipelineHarness, to: number, ...flags: "--dry-run"[]) {
  process.env = { ...savedEnv, ...p.envVars };
  delete process.env.FOLLOW_UP_SHARDS;
  const io = captureIo();
  const code = await runReshard(
    {
      to: String(to),
      json: true,
      by: "alice",
      ...(flags.includes("--dry-run") && { dryRun: true }),
    },
    io,
  );
  expect(code).toBe(0);
  return JSON.parse(io.output()) as Record<string, number | boolean>;
}

/** A reshard to `to` that dies as `part` starts, as a killed command would. */
function reshardKilledBefore(p: PipelineHarness, to: number, part: string) {
  return reshard({
    redis: p.redis,
    prefix: p.prefix,
    cluster: p.env.REDIS_CLUSTER,
    to,
    by: "alice",
    onPart: (started) => {
      if (started === part) throw new Error("killed");
    },
  });
}

/** Pending follow-ups as `followups schedule --json` counts them, over 120 days. */
const pendingOf = (p: PipelineHarness) => pendingTotal(p.envVars, p.configDir, savedEnv);

function queuesOf(p: PipelineHarness, shards: number): Shards<Queue<FollowUpJobData>> {
  return new Shards(
    shards,
    (shard) =>
      new Queue<FollowUpJobData>(FOLLOW_UPS_QUEUE, {
        connection: p.redis,
        prefix: queuePrefix(p.prefix, FOLLOW_UPS_QUEUE, p.env.REDIS_CLUSTER, shard, shards),
      }),
  );
}

const minutesAgo = (minutes: number) => DateTime.utc().minus({ minutes }).toISO() ?? "";

/**
 * A big-ticket purchase by every customer (`evt-b-<customer>`; CUSTOMERS unless given): its thank-you due in two minutes
 * (a delayed job), its check-in in three months (the compact schedule).
 */
async function buyBigTickets(p: PipelineHarness, customers = CUSTOMERS): Promise<void> {
  for (const id of customers)
    await p.publisher.publish(
      purchaseInput({
        id: `evt-b-${id}`,
        orderId: `ord-b-${id}`,
        occurredAt: minutesAgo(58),
        customer: { id, email: `${id}@example.com`, phone: "+44 20 7946 0958" },
        items: [item("big-ticket", "900.00")],
      }) as never,
    );
  for (const id of customers) await eventProcessed(p, `evt-b-${id}`);
}

/** A pipeline of two shards where every customer bought big tickets (buyBigTickets), its worker stopped. */
async function boughtWithWorkerStopped(name: string): Promise<PipelineHarness> {
  pipeline = await startPipeline(name, { shards: 2 });
  await buyBigTickets(pipeline);
  await pipeline.worker?.close();
  pipeline.worker = undefined;
  return pipeline;
}

/** A pipeline of two shards where 4 customers bought big tickets, its worker stopped; each shard's keys. */
async function fourBoughtWithWorkerStopped(name: string) {
  pipeline = await startPipeline(name, { shards: 2 });
  const p = pipeline;
  const customers = CUSTOMERS.slice(0, 4);
  await buyBigTickets(p, customers);
  await p.worker?.close();
  p.worker = undefined;
  const keysOf = (shards: number) =>
    Array.from({ length: shards }, (_, n) => new StoreKeys(shardScope(p.prefix, n, shards)));
  return { p, customers, keysOf };
}

/** Every shard's look for lost jobs (of `shards`) at `at`: what they queued again and skipped. */
async function lookForLostJobs(p: PipelineHarness, shards: number, at: number) {
  const rules = await shippedRules();
  const stores = shardStores(p.redis, p.prefix, shards);
  const queues = queuesOf(p, shards);
  const total = { requeued: 0, skipped: 0 };
  for (let shard = 0; shard < shards; shard++) {
    const round = await createLostJobs({
      shard,
      store: stores.of(shard).store,
      watch: stores.of(shard).jobWatch,
      followUps: queues.of(shard),
      redis: p.redis,
      caps: stores.of(shard).caps,
      rules: () => rules,
      metrics: new FollowUpMetrics(),
      logger: createLogger({ level: "silent", pretty: false }),
      now: () => at,
      marginMs: 15 * 60_000,
    }).lookRound();
    total.requeued += round.requeued;
    total.skipped += round.skipped;
  }
  await Promise.all(queues.made().map((queue) => queue.close()));
  return total;
}

/**
 * A reshard to `to` on the pipeline's connection (the command makes one of its own) during which
 * PTTL answers 0 for `lastMs`, as for keys read in their last millisecond (PTTL rounds their
 * expiry down; a window of one millisecond cannot be hit); resolves once that millisecond is over.
 */
async function reshardReadingLastMs(p: PipelineHarness, to: number, lastMs: ReadonlySet<string>) {
  const reads = p.redis as unknown as { pttl: (...args: unknown[]) => Promise<number> };
  const pttl = reads.pttl.bind(p.redis);
  reads.pttl = async (...args: unknown[]) => (lastMs.has(args[0] as string) ? 0 : pttl(...args));
  try {
    return await reshard({
      redis: p.redis,
      prefix: p.prefix,
      cluster: p.env.REDIS_CLUSTER,
      to,
      by: "alice",
    });
  } finally {
    reads.pttl = pttl;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Removes every customer's thank-you job from their shard's queue (of `shards`), as a lost job,
 * each step still scheduled; the latest due time of those steps.
 */
async function loseThankYouJobs(
  p: PipelineHarness,
  shards: number,
  queues: Shards<Queue<FollowUpJobData>>,
): Promise<number> {
  const stores = shardStores(p.redis, p.prefix, shards);
  let due = 0;
  for (const id of CUSTOMERS) {
    const eventId = `evt-b-${id}`;
    const record = (await stores.ofCustomer(id).store.stepRecords(eventId, [BIG_THANKS])).get(
      BIG_THANKS,
    );
    expect(record?.state).toBe("scheduled");
    due = Math.max(due, record?.dueAt ?? 0);
    expect(await queues.ofCustomer(id).remove(followUpJobId(eventId, BIG_THANKS))).toBe(1);
  }
  return due;
}

describe("followups reshard", () => {
  it("moves every customer to their shard under the new count, and nothing pending is lost or sent twice", async () => {
    pipeline = await startPipeline("reshard", { shards: 2 });
    const p = pipeline;
    // A first purchase each, thanked at once (message references, order links, histories).
    for (const id of CUSTOMERS)
      await p.publisher.publish(
        purchaseInput({
          id: `evt-a-${id}`,
          orderId: `ord-a-${id}`,
          occurredAt: minutesAgo(120),
          customer: { id, email: `${id}@example.com`, phone: "+44 20 7946 0958" },
          items: [item("kitchenware", "75.00")],
        }) as never,
      );
    await p.sink.waitForMessages(CUSTOMERS.length);
    // A second, big-ticket.
    await buyBigTickets(p);
    // A refund of an order nobody bought: its record (no customer) is in shard 0, and stays.
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-unknown-order",
      occurredAt: DateTime.utc().toISO() ?? "",
      orderId: "ord-nobody",
    });
    await eventProcessed(p, "ref-unknown-order");
    await p.worker?.close();
    p.worker = undefined;

    // One thank-you fails for good in its shard's queue, as a bounced email would.
    const failing = CUSTOMERS[0] as string;
    const failingShard = customerShard(failing, 2);
    const oldQueues = queuesOf(p, 2);
    await failThankYou(
      p.redis,
      shardStores(p.redis, p.prefix, 2).of(failingShard).store,
      oldQueues.of(failingShard),
      `evt-b-${failing}`,
      BIG_THANKS,
    );
    // One thank-you postponed by three hours (a send window, a retry's backoff) in a shard it
    // leaves: it keeps its time in its new queue.
    const postponed = CUSTOMERS.find(
      (id) => id !== failing && customerShard(id, 2) !== customerShard(id, 5),
    ) as string;
    const postponedQueue = oldQueues.ofCustomer(postponed);
    const postponedId = followUpJobId(`evt-b-${postponed}`, BIG_THANKS);
    // Made two days ago (BullMQ keeps a job's first timestamp when it postpones it).
    await p.redis.hset(postponedQueue.toKey(postponedId), "timestamp", Date.now() - 2 * 86_400_000);
    await (await postponedQueue.getJob(postponedId))?.changeDelay(3 * 3_600_000);
    await Promise.all(oldQueues.made().map((queue) => queue.close()));
    const pendingBefore = await pendingOf(p);
    // Seven thank-yous and eight check-ins.
    expect(pendingBefore).toBe(15);

    // A purchase noted for a re-plan under newer rules (a walk under generation 7 began after an
    // older worker planned it) stays noted, in its new shard, and every new shard knows the walk.
    const oldKeys = new StoreKeys(shardScope(p.prefix, customerShard(postponed, 2), 2));
    await p.redis.set(oldKeys.replanWalk(), "7");
    await p.redis.sadd(oldKeys.replanLater(), `evt-b-${postponed}`);

    // A dry run changes nothing.
    const dry = await reshardTo(p, 5, "--dry-run");
    expect(dry).toMatchObject({ from: 2, to: 5, dryRun: true, purchasesPlaced: 16 });
    expect(await p.redis.get(new StoreKeys(p.prefix).shardCount())).toBe("2");

    const done = await reshardTo(p, 5);
    expect(done).toMatchObject({ from: 2, to: 5, dryRun: false, purchasesPlaced: 16 });
    expect(done.scheduledDropped).toBe(0);
    expect(await p.redis.get(new StoreKeys(p.prefix).shardCount())).toBe("5");
    // Each purchase's record is in its customer's new shard and nowhere else.
    const after = shardStores(p.redis, p.prefix, 5);
    const keysOf = (shards: number) =>
      Array.from({ length: shards }, (_, n) => new StoreKeys(shardScope(p.prefix, n, shards)));
    const everyKeys = [...keysOf(2), ...keysOf(5)];
    for (const id of CUSTOMERS) {
      const home = keysOf(5)[customerShard(id, 5)] as StoreKeys;
      for (const eventId of [`evt-a-${id}`, `evt-b-${id}`]) {
        const holders = new Set<string>();
        for (const keys of everyKeys)
          if ((await p.redis.exists(keys.eventRecord(eventId))) === 1)
            holders.add(keys.eventRecord(eventId));
        expect([...holders]).toEqual([home.eventRecord(eventId)]);
      }
      // The check-in waits in the new shard's schedule.
      const record = (await after.ofCustomer(id).store.stepRecords(`evt-b-${id}`, [CHECK_IN])).get(
        CHECK_IN,
      );
      expect(record?.state).toBe("scheduled");
      const bucket = await p.redis.lrange(home.scheduleBucket(bucketOf(record?.dueAt ?? 0)), 0, -1);
      expect(bucket).toContain(scheduleEntry(`evt-b-${id}`, CHECK_IN));
    }
    const refundHolders = new Set<string>();
    for (const keys of everyKeys)
      if ((await p.redis.exists(keys.eventRecord("ref-unknown-order"))) === 1)
        refundHolders.add(keys.eventRecord("ref-unknown-order"));
    expect([...refundHolders]).toEqual([keysOf(5)[0]?.eventRecord("ref-unknown-order")]);
    const movedLater = await queuesOf(p, 5)
      .ofCustomer(postponed)
      .getJob(followUpJobId(`evt-b-${postponed}`, BIG_THANKS));
    expect(await movedLater?.getState()).toBe("delayed");
    const dueIn = (movedLater?.timestamp ?? 0) + (movedLater?.delay ?? 0) - Date.now();
    expect(dueIn).toBeGreaterThan(2.9 * 3_600_000);
    expect(dueIn).toBeLessThan(3.1 * 3_600_000);
    // The emails' references name the new shards.
    const references = new SmsReferences(p.redis, p.prefix);
    for (const mail of p.sink.messages) {
      const ref = await references.stepOfEmail(mail.parsed.messageId ?? "");
      const customer = ref?.eventId.replace(/^evt-a-/, "") ?? "";
      expect(ref?.shard).toBe(customerShard(customer, 5));
    }
    // The counts add up as before.
    expect(await pendingOf(p)).toBe(pendingBefore);
    const newKeys = keysOf(5);
    expect(
      await p.redis.smembers(newKeys[customerShard(postponed, 5)]?.replanLater() ?? ""),
    ).toEqual([`evt-b-${postponed}`]);
    for (const keys of newKeys) expect(await p.redis.get(keys.replanWalk())).toBe("7");

    // A worker of the old count is refused; one of the new count sends what was pending, once.
    await expect(workerWith(p, 2)).rejects.toThrow("live in 5 shards");
    await workerWith(p, 5);
    const newQueues = queuesOf(p, 5);
    for (const id of CUSTOMERS.slice(1)) {
      const job = await eventually(
        () => newQueues.ofCustomer(id).getJob(followUpJobId(`evt-b-${id}`, BIG_THANKS)),
        `the thank-you job of ${id} in its new shard's queue`,
      );
      await job.promote().catch(() => undefined);
    }
    await p.sink.waitForMessages(CUSTOMERS.length + CUSTOMERS.length - 1);
    // Every thank-you's job in the new shards has finished, retries included: none sends again.
    await settledSteps(
      newQueues.all(),
      CUSTOMERS.map((id) => ({ eventId: `evt-b-${id}`, stepId: BIG_THANKS })),
      "the thank-yous in the new shards",
    );
    expect(p.sink.messages).toHaveLength(CUSTOMERS.length * 2 - 1);

    // The failed thank-you is still listed, from its new shard.
    const rules = await shippedRules();
    const tools = createOperatorTools({
      redis: p.redis,
      prefix: p.prefix,
      shards: 5,
      rules: () => rules,
      followUps: newQueues,
      events: p.events,
      outboxDir: p.outboxDir,
      sendLeaseMs: 120_000,
      now: Date.now,
    });
    expect((await tools.failed({})).map((f) => f.ref)).toEqual([`evt-b-${failing}/${BIG_THANKS}`]);

    // A repeat customer's history moved with them: their third purchase is counted as such.
    const repeat = CUSTOMERS[1] as string;
    await p.publisher.publish(
      purchaseInput({
        id: `evt-c-${repeat}`,
        orderId: `ord-c-${repeat}`,
        occurredAt: minutesAgo(30),
        customer: { id: repeat, email: `${repeat}@example.com` },
        items: [item("kitchenware", "20.00")],
      }) as never,
    );
    await eventProcessed(p, `evt-c-${repeat}`);
    const home = keysOf(5)[customerShard(repeat, 5)] as StoreKeys;
    expect(await p.redis.hget(home.eventRecord(`evt-c-${repeat}`), "h")).toBe("2");

    // A refund finds its order's purchase in the new shard and cancels its check-in.
    const refunded = CUSTOMERS[2] as string;
    await p.publisher.publish({
      type: "purchase.refunded",
      id: `ref-${refunded}`,
      occurredAt: DateTime.utc().toISO() ?? "",
      orderId: `ord-b-${refunded}`,
    });
    await eventually(
      async () =>
        (await after.ofCustomer(refunded).store.stepRecords(`evt-b-${refunded}`, [CHECK_IN])).get(
          CHECK_IN,
        )?.state === "cancelled"
          ? true
          : undefined,
      "the refunded purchase's check-in to be cancelled",
    );
    await Promise.all(newQueues.made().map((queue) => queue.close()));

    // And back to one shard: every check-in still waits, counted once.
    await Promise.all(workers.splice(0).map((worker) => worker.close()));
    const pendingNow = await pendingOf(p);
    // The check-ins but the refunded one, and whatever the third purchase planned.
    const third = await after.ofCustomer(repeat).store.allStepRecords(`evt-c-${repeat}`);
    const thirdPending = [...third.values()].filter((step) => step.state === "scheduled").length;
    expect(pendingNow).toBe(CUSTOMERS.length - 1 + thirdPending);
    const back = await reshardTo(p, 1);
    expect(back).toMatchObject({ from: 5, to: 1, scheduledDropped: 0 });
    expect(await pendingOf(p)).toBe(pendingNow);
    const one = shardStores(p.redis, p.prefix, 1).of(0);
    for (const id of CUSTOMERS.filter((id) => id !== refunded))
      expect((await one.store.stepRecords(`evt-b-${id}`, [CHECK_IN])).get(CHECK_IN)?.state).toBe(
        "scheduled",
      );
    expect(
      await p.redis.hget(keysOf(1)[0]?.eventRecord("ref-unknown-order") ?? "", "f"),
    ).toBeTruthy();
    // Nothing is left under the tags of shards that no longer exist.
    for (const keys of keysOf(5).slice(1)) {
      const tag = keys.eventRecord("x").split(":fu:")[0];
      const left: string[] = [];
      for await (const batch of scanKeys(p.redis, `${tag}:*`)) left.push(...batch);
      expect(left).toEqual([]);
    }
  });

  it("leaves an erasure afterwards nothing of a moved customer's finished jobs in their old shard's queue", async () => {
    pipeline = await startPipeline("reshard-erase", { shards: 1 });
    const p = pipeline;
    // A customer whose shard under three shards is not 0, where their jobs ran.
    const customerId =
      Array.from({ length: 20 }, (_, i) => `cus-moved-${i}`).find(
        (id) => customerShard(id, 3) !== 0,
      ) ?? "";
    await p.publisher.publish(
      purchaseInput({
        id: "evt-moved",
        orderId: "ord-moved",
        occurredAt: minutesAgo(1),
        customer: { id: customerId },
        items: [item("kitchenware", "75.00")],
      }) as never,
    );
    await promoteStep(p, "evt-moved", "thank-you.thank-you");
    const [thankYou] = await p.sink.waitForMessages(1);
    const messageId = thankYou?.parsed.messageId ?? "";
    expect(messageId).not.toBe("");
    // The finished job of the send names the email's Message-ID (its return value), as does the
    // queue's event stream.
    await eventually(
      async () =>
        (await keysHolding(p.redis, p.prefix, [messageId])).length > 1 ? true : undefined,
      "the send's job to finish",
    );
    await p.worker?.close();
    await reshardTo(p, 3);
    process.env = { ...savedEnv, ...p.commandEnv, FOLLOW_UP_SHARDS: "3" };
    expect(await runErase(customerId, { config: p.configDir, json: true }, captureIo())).toBe(0);
    expect(await keysHolding(p.redis, p.prefix, [messageId])).toEqual([]);
  });

  it("moves the job watch with the steps: a moved step whose job is lost afterwards is found in its new shard", async () => {
    // Thank-yous due in two minutes: delayed jobs, each filed in its shard's job watch.
    const p = await boughtWithWorkerStopped("reshard-job-watch");
    await reshardTo(p, 5);
    // Every thank-you's job, moved to its new shard's queue, is lost there.
    const newQueues = queuesOf(p, 5);
    const due = await loseThankYouJobs(p, 5, newQueues);
    // Each new shard's look, an hour and a half after they fell due, queues every one again.
    expect(await lookForLostJobs(p, 5, due + 90 * 60_000)).toEqual({
      requeued: CUSTOMERS.length,
      skipped: 0,
    });
    for (const id of CUSTOMERS)
      expect(
        await newQueues.ofCustomer(id).getJob(followUpJobId(`evt-b-${id}`, BIG_THANKS)),
      ).toBeDefined();
    await Promise.all(newQueues.made().map((queue) => queue.close()));
  });

  it("moves a step's mark of being queued again after its job was lost: a second look in its new shard within the margin neither queues nor counts it again", async () => {
    const p = await boughtWithWorkerStopped("reshard-requeue-mark");
    const before = shardStores(p.redis, p.prefix, 2);
    const oldQueues = queuesOf(p, 2);
    const due = await loseThankYouJobs(p, 2, oldQueues);
    // Every thank-you's job is lost; the look an hour and a half later queues each again, and
    // marks it so for the margin (15 minutes here).
    const lookedAt = due + 90 * 60_000;
    expect(await lookForLostJobs(p, 2, lookedAt)).toEqual({
      requeued: CUSTOMERS.length,
      skipped: 0,
    });
    // Each is filed in the watch once more (its event published again, say), to be looked at
    // five minutes on, and its job is lost again.
    for (const id of CUSTOMERS) {
      const eventId = `evt-b-${id}`;
      await before
        .ofCustomer(id)
        .jobWatch.watch([{ eventId, stepId: BIG_THANKS, lookAt: lookedAt + 5 * 60_000 }]);
      expect(await oldQueues.ofCustomer(id).remove(followUpJobId(eventId, BIG_THANKS))).toBe(1);
    }
    await Promise.all(oldQueues.made().map((queue) => queue.close()));
    await reshardTo(p, 5);
    // Each mark is in its purchase's new shard, and none is left under a tag of the old count.
    const keysOf = (shards: number) =>
      Array.from({ length: shards }, (_, n) => new StoreKeys(shardScope(p.prefix, n, shards)));
    const newKeys = keysOf(5);
    for (const id of CUSTOMERS) {
      const home = newKeys[customerShard(id, 5)] as StoreKeys;
      expect(await p.redis.exists(home.lostJobRequeue(`evt-b-${id}`, BIG_THANKS))).toBe(1);
      const pttl = await p.redis.pttl(home.lostJobRequeue(`evt-b-${id}`, BIG_THANKS));
      expect(pttl).toBeGreaterThan(0);
    }
    const newTags = new Set(newKeys.map((keys) => keys.eventRecord("x").split(":fu:")[0]));
    for (const keys of keysOf(2)) {
      const tag = keys.eventRecord("x").split(":fu:")[0] as string;
      if (newTags.has(tag)) continue;
      const left: string[] = [];
      for await (const batch of scanKeys(p.redis, `${tag}:fu:jq:*`)) left.push(...batch);
      expect(left).toEqual([]);
    }
    // The second look, within the margin of the first, in the steps' new shards: already queued
    // once, none is queued (nor counted) again.
    expect(await lookForLostJobs(p, 5, lookedAt + 5 * 60_000)).toEqual({
      requeued: 0,
      skipped: 0,
    });
  });

  it("has a shard read again for the job watch's upgrade when purchases of a shard not read yet move into it", async () => {
    const p = await boughtWithWorkerStopped("reshard-job-watch-upgrade");
    const keys = [0, 1].map((n) => new StoreKeys(shardScope(p.prefix, n, 2)));
    const [read, unread] = keys as [StoreKeys, StoreKeys];
    // Shard 0's records were read at its worker's start; shard 1 is as a version before the
    // watch left it (its worker never started on this version): nothing in its watch, no mark.
    expect(await p.redis.get(read.jobWatchUpgrade())).toBe("done");
    const buckets = await p.redis.zrange(unread.jobWatchIndex(), "0", "-1");
    for (const key of [
      unread.jobWatchIndex(),
      unread.jobWatchUpgrade(),
      ...buckets.map((b) => unread.jobWatchBucket(Number(b))),
    ])
      await p.redis.del(key);
    await reshardTo(p, 1);
    // Every moved thank-you of shard 1 then loses its job.
    const after = shardStores(p.redis, p.prefix, 1).of(0);
    const queue = queuesOf(p, 1).of(0);
    const unwatched = CUSTOMERS.filter((id) => customerShard(id, 2) === 1);
    expect(unwatched.length).toBeGreaterThan(0);
    let due = 0;
    for (const id of unwatched) {
      const eventId = `evt-b-${id}`;
      const record = (await after.store.stepRecords(eventId, [BIG_THANKS])).get(BIG_THANKS);
      due = Math.max(due, record?.dueAt ?? 0);
      expect(await queue.remove(followUpJobId(eventId, BIG_THANKS))).toBe(1);
    }
    await queue.close();
    // The first worker's start after the change reads the shard they are in now.
    const filed = await watchStepsOfEarlierVersions({
      shard: 0,
      watch: after.jobWatch,
      horizonMs: 5 * 60_000,
      now: () => Date.now(),
      logger: createLogger({ level: "silent", pretty: false }),
    });
    expect(filed).toBeGreaterThanOrEqual(unwatched.length);
    expect(await lookForLostJobs(p, 1, due + 90 * 60_000)).toEqual({
      requeued: unwatched.length,
      skipped: 0,
    });
  });

  it("moves a scheduled step of a purchase it cannot place to shard 0 with its record, not away", async () => {
    const p = await boughtWithWorkerStopped("reshard-unplaced");
    // A customer of shard 1 who lives in another shard than 0 after the change.
    const id = CUSTOMERS.find((c) => customerShard(c, 2) === 1 && customerShard(c, 3) !== 0);
    if (id === undefined) throw new Error("no customer of shard 1 outside shard 0 of three");
    const eventId = `evt-b-${id}`;
    const old = new StoreKeys(shardScope(p.prefix, 1, 2));
    // Its purchase cannot be read (damaged, or a newer version's form) and its history no longer
    // lists it: nothing says whose it is, and its record goes to shard 0.
    await p.redis.hdel(old.customerHistory(id), `e:${eventId}`);
    const fields = await p.redis.hkeys(old.eventRecord(eventId));
    const purchaseFields = fields.filter((field) => /^p\d+$/.test(field));
    expect(purchaseFields.length).toBeGreaterThan(0);
    for (const field of purchaseFields)
      await p.redis.hset(old.eventRecord(eventId), field, "\u0009?");
    const record = (
      await shardStores(p.redis, p.prefix, 2).of(1).store.stepRecords(eventId, [CHECK_IN])
    ).get(CHECK_IN);
    expect(record?.state).toBe("scheduled");

    const result = await reshardTo(p, 3);
    expect(result).toMatchObject({ recordsToShardZero: 1, scheduledDropped: 0 });
    // The check-in waits in shard 0's schedule, beside its record, for the promoter.
    const zero = new StoreKeys(shardScope(p.prefix, 0, 3));
    expect(await p.redis.exists(zero.eventRecord(eventId))).toBe(1);
    const bucket = await p.redis.lrange(zero.scheduleBucket(bucketOf(record?.dueAt ?? 0)), 0, -1);
    expect(bucket).toContain(scheduleEntry(eventId, CHECK_IN));
  });

  it("carries the re-planner's notes and their failed tries to each purchase's new shard, and each key's expiry (one in its last millisecond too)", async () => {
    const { p, customers, keysOf } = await fourBoughtWithWorkerStopped("reshard-replan-tries");
    const WEEK = 7 * 86_400_000;
    // Each purchase noted for a re-plan under newer rules in its shard, its re-plans failed as
    // many times as its place in the list (the re-planner's `{…}:fu:tr`, beside `{…}:fu:tq`).
    const tries = new Map(customers.map((id, n) => [`evt-b-${id}`, `${n + 1} ${1_000 + n}`]));
    for (const id of customers) {
      const keys = keysOf(2)[customerShard(id, 2)] as StoreKeys;
      await p.redis.sadd(keys.replanLater(), `evt-b-${id}`);
      await p.redis.pexpire(keys.replanLater(), WEEK);
      await p.redis.hset(keys.replanLaterTries(), `evt-b-${id}`, tries.get(`evt-b-${id}`) ?? "");
      await p.redis.pexpire(keys.replanLaterTries(), WEEK);
    }
    // A customer's key that moves, read in its last millisecond: PTTL answers 0 for it (its
    // expiry rounded down), answered so here, as a window of one millisecond cannot be hit.
    const moving = customers.find((id) => customerShard(id, 2) !== customerShard(id, 5)) as string;
    const lastMs = (shards: number) =>
      (keysOf(shards)[customerShard(moving, shards)] as StoreKeys).lastSent(moving);
    await p.redis.set(lastMs(2), "x", "PX", 3_600_000);
    await expect(reshardReadingLastMs(p, 5, new Set([lastMs(2)]))).resolves.toMatchObject({
      from: 2,
      to: 5,
    });
    // Moved with the millisecond it had left, not made a key that never expires.
    expect(await p.redis.pttl(lastMs(5))).toBe(-2);
    expect(await p.redis.exists(lastMs(2))).toBe(0);

    /** Where each noted purchase's tries are, by key, and that each such key keeps its week. */
    const triesHeld = async (shards: number) => {
      const held: Record<string, Record<string, string>> = {};
      const noted: Record<string, string[]> = {};
      for (const keys of [...keysOf(2), ...keysOf(5), ...keysOf(1)]) {
        const found = await p.redis.hgetall(keys.replanLaterTries());
        if (Object.keys(found).length > 0) {
          held[keys.replanLaterTries()] = found;
          expect(await p.redis.pttl(keys.replanLaterTries())).toBeGreaterThan(WEEK - 120_000);
        }
        const ids = await p.redis.smembers(keys.replanLater());
        if (ids.length > 0) noted[keys.replanLater()] = ids.sort();
      }
      const expected: Record<string, Record<string, string>> = {};
      const expectedNoted: Record<string, string[]> = {};
      for (const id of customers) {
        const keys = keysOf(shards)[customerShard(id, shards)] as StoreKeys;
        const eventId = `evt-b-${id}`;
        expected[keys.replanLaterTries()] = {
          ...expected[keys.replanLaterTries()],
          [eventId]: tries.get(eventId) ?? "",
        };
        expectedNoted[keys.replanLater()] = [
          ...(expectedNoted[keys.replanLater()] ?? []),
          eventId,
        ].sort();
      }
      expect(held).toEqual(expected);
      expect(noted).toEqual(expectedNoted);
    };
    await triesHeld(5);
    // And back to one shard: all of them in shard 0's.
    await reshardTo(p, 1);
    await triesHeld(1);
  });

  it("carries the list of texts a final SMS status failed to each purchase's new shard, with their times and the list's expiry (followups failed reads each shard's list with its records)", async () => {
    const { p, customers, keysOf } = await fourBoughtWithWorkerStopped("reshard-sms-failed");
    const MONTH = 30 * 86_400_000;
    // Each purchase's check-in text failed by a status (note-sms-status.lua's index), a minute apart.
    const at = new Map(
      customers.map((id, n) => [`evt-b-${id}/${CHECK_IN}`, 1_000_000 + n * 60_000]),
    );
    for (const id of customers) {
      const keys = keysOf(2)[customerShard(id, 2)] as StoreKeys;
      const ref = `evt-b-${id}/${CHECK_IN}`;
      await p.redis.zadd(keys.smsStatusFailures(), at.get(ref) ?? 0, ref);
      await p.redis.pexpire(keys.smsStatusFailures(), MONTH);
    }
    /** Where each failed text is listed, by key, with its time; each such key keeps its month. */
    const listedIn = async (shards: number) => {
      const held: Record<string, Record<string, number>> = {};
      for (const keys of [...keysOf(2), ...keysOf(5), ...keysOf(1)]) {
        const found = await p.redis.zrange(keys.smsStatusFailures(), 0, -1, "WITHSCORES");
        if (found.length === 0) continue;
        const entries: Record<string, number> = {};
        for (let i = 0; i + 1 < found.length; i += 2)
          entries[found[i] ?? ""] = Number(found[i + 1]);
        held[keys.smsStatusFailures()] = entries;
        expect(await p.redis.pttl(keys.smsStatusFailures())).toBeGreaterThan(MONTH - 120_000);
      }
      const expected: Record<string, Record<string, number>> = {};
      for (const id of customers) {
        const key = (keysOf(shards)[customerShard(id, shards)] as StoreKeys).smsStatusFailures();
        const ref = `evt-b-${id}/${CHECK_IN}`;
        expected[key] = { ...expected[key], [ref]: at.get(ref) ?? 0 };
      }
      expect(held).toEqual(expected);
    };
    await listedIn(2);
    await reshardTo(p, 5);
    await listedIn(5);
    await reshardTo(p, 1);
    await listedIn(1);
  });

  it("carries the expiry of a schedule bucket and an erasure marker read in their last millisecond: they do not become keys that never expire", async () => {
    const p = await boughtWithWorkerStopped("reshard-last-ms");
    const oldKeys = [0, 1].map((n) => new StoreKeys(shardScope(p.prefix, n, 2)));
    // Every check-in's schedule bucket of both shards, and an erasure marker in shard 1.
    const buckets: string[] = [];
    for (const keys of oldKeys)
      for (const bucket of await p.redis.zrange(keys.scheduleIndex(), "0", "-1"))
        buckets.push(keys.scheduleBucket(Number(bucket)));
    expect(buckets.length).toBeGreaterThanOrEqual(2);
    const marker = (oldKeys[1] as StoreKeys).erasedCustomer("erased-customer-hash");
    await p.redis.set(marker, String(Date.now()), "PX", 3_600_000);
    // Each read in its last millisecond.
    await expect(reshardReadingLastMs(p, 5, new Set([...buckets, marker]))).resolves.toMatchObject({
      from: 2,
      to: 5,
      scheduledDropped: 0,
    });
    // Moved (or kept) with the millisecond they had left: none is left without an expiry.
    const newKeys = Array.from({ length: 5 }, (_, n) => new StoreKeys(shardScope(p.prefix, n, 5)));
    const forever: string[] = [];
    for (const keys of newKeys) {
      for (const bucket of await p.redis.zrange(keys.scheduleIndex(), "0", "-1"))
        if ((await p.redis.pttl(keys.scheduleBucket(Number(bucket)))) === -1)
          forever.push(keys.scheduleBucket(Number(bucket)));
      const spread = keys.erasedCustomer("erased-customer-hash");
      if ((await p.redis.pttl(spread)) === -1) forever.push(spread);
    }
    expect(forever).toEqual([]);
  });

  it("finishes a change that stopped half-way when run again", async () => {
    const p = await boughtWithWorkerStopped("reshard-resumed");
    const pendingBefore = await pendingOf(p);
    expect(pendingBefore).toBe(CUSTOMERS.length * 2);

    // The first run dies after moving the jobs and the keys, before the schedule.
    await expect(reshardKilledBefore(p, 3, "moving the schedule")).rejects.toThrow("killed");
    await expect(workerWith(p, 3)).rejects.toThrow("has not finished");
    const done = await reshardTo(p, 3);
    expect(done).toMatchObject({ from: 2, to: 3, scheduledDropped: 0 });
    expect(await pendingOf(p)).toBe(pendingBefore);

    // Every thank-you goes once from its new shard; every check-in waits there.
    await workerWith(p, 3);
    const queues = queuesOf(p, 3);
    const after = shardStores(p.redis, p.prefix, 3);
    for (const id of CUSTOMERS) {
      const job = await eventually(
        () => queues.ofCustomer(id).getJob(followUpJobId(`evt-b-${id}`, BIG_THANKS)),
        `the thank-you job of ${id} in its new shard's queue`,
      );
      await job.promote().catch(() => undefined);
      const record = (await after.ofCustomer(id).store.stepRecords(`evt-b-${id}`, [CHECK_IN])).get(
        CHECK_IN,
      );
      expect(record?.state).toBe("scheduled");
      const keys = new StoreKeys(shardScope(p.prefix, customerShard(id, 3), 3));
      const bucket = await p.redis.lrange(keys.scheduleBucket(bucketOf(record?.dueAt ?? 0)), 0, -1);
      expect(
        bucket.filter((entry) => entry === scheduleEntry(`evt-b-${id}`, CHECK_IN)),
      ).toHaveLength(1);
    }
    await p.sink.waitForMessages(CUSTOMERS.length);
    // Every thank-you's job in the new shards has finished, retries included: none sends again.
    await settledSteps(
      queues.all(),
      CUSTOMERS.map((id) => ({ eventId: `evt-b-${id}`, stepId: BIG_THANKS })),
      "the thank-yous in the new shards",
    );
    expect(p.sink.messages).toHaveLength(CUSTOMERS.length);
    await Promise.all(queues.made().map((queue) => queue.close()));
  });

  it("refuses a second run while one is under way; a run killed -9 leaves a hold that runs out", async () => {
    const p = await boughtWithWorkerStopped("reshard-twice");
    const pendingBefore = await pendingOf(p);

    // An operator runs it again in another terminal while the first is still moving keys.
    process.env = { ...savedEnv, ...p.envVars };
    delete process.env.FOLLOW_UP_SHARDS;
    let second: Promise<number> | undefined;
    const first = reshard({
      redis: p.redis,
      prefix: p.prefix,
      cluster: p.env.REDIS_CLUSTER,
      to: 3,
      by: "alice",
      onPart: (part) => {
        if (part !== "moving customers' and purchases' keys") return;
        second = runReshard({ to: "3", by: "bob" }, captureIo());
        // Awaited below, once the first has finished.
        second.catch(() => undefined);
      },
    });
    await expect(first).resolves.toMatchObject({ from: 2, to: 3 });
    expect(second).toBeDefined();
    await expect(second).rejects.toThrow(
      /^followups reshard is running on this deployment already \(pid \d+ on .+, started .+\): wait for it to finish/,
    );
    expect(await pendingOf(p)).toBe(pendingBefore);

    // A run killed -9 cannot give its hold back: the next run is refused, saying for how long,
    // until it runs out; then it runs.
    const killed = await takeMoveLease(p.redis, p.prefix, "followups reshard", { leaseMs: 1_500 });
    killed.abandon();
    await expect(runReshard({ to: "1" }, captureIo())).rejects.toThrow(
      /If it was stopped \(killed, or its machine went away\), its hold runs out within [12] s: then run the command again/,
    );
    await new Promise((resolve) => setTimeout(resolve, 1_600));
    expect(await reshardTo(p, 1)).toMatchObject({ from: 3, to: 1 });
    expect(await pendingOf(p)).toBe(pendingBefore);

    // A run whose event loop stalled past its lease: another may have taken it meanwhile, and
    // the stalled run stops at its next part instead of going on beside it.
    const stalled = await takeMoveLease(p.redis, p.prefix, "followups reshard", { leaseMs: 300 });
    const until = performance.now() + 600;
    while (performance.now() < until) {
      // Busy: no timer (no renewal) runs.
    }
    // Its next part checks before any renewal could run (it would have found the lease lapsed).
    expect(() => stalled.check()).toThrow(/stalled for longer than its hold/);
    const other = await takeMoveLease(p.redis, p.prefix, "followups reshard", { leaseMs: 300 });
    stalled.abandon();
    await other.release();
  });

  it("stops with the one error when Redis goes away mid-run, and no stack trace per queue on the console", async () => {
    const server = await startRedisServer();
    try {
      pipeline = await startPipeline("reshard-redis-gone", {
        redisUrl: server.url,
        cluster: false,
        shards: 2,
      });
      const p = pipeline;
      await buyBigTickets(p, CUSTOMERS.slice(0, 3));
      await p.worker?.close();
      p.worker = undefined;
      process.env = { ...savedEnv, ...p.envVars };
      delete process.env.FOLLOW_UP_SHARDS;
      // The test's own queues listen (they reconnect once the server is back).
      for (const queue of [p.events, ...p.followUpQueues]) queue.on("error", () => undefined);
      // What BullMQ prints of its queues' errors when nobody listens (the console is not ours).
      const printed = vi.spyOn(console, "error").mockImplementation(() => undefined);
      const io = captureIo();
      let restarted: Promise<void> | undefined;
      const gone = {
        ...io,
        err: (chunk: string) => {
          io.err(chunk);
          // Killed, and back a moment later (the test's own connections reconnect).
          if (chunk.startsWith("moving customers"))
            restarted = server.restart({ signal: "SIGKILL", downMs: 1_000 });
        },
      };
      try {
        await expect(runReshard({ to: "3" }, gone)).rejects.toThrow();
        // The outage is over and connections came back: a connection's errors while Redis was
        // away (each failed reconnect) are behind us, whoever listened to them or not.
        expect(restarted).toBeDefined();
        await restarted;
        await eventually(
          async () => (await p.redis.ping().catch(() => "")) === "PONG" || undefined,
          "the test's own connection to reach Redis again",
        );
        expect(printed.mock.calls.map((call) => String(call[0]))).toEqual([]);
      } finally {
        printed.mockRestore();
      }
    } finally {
      await pipeline?.close();
      pipeline = undefined;
      await server.stop();
    }
  });

  it("carries a paused follow-ups queue: every new shard's queue is paused, also when a run that stopped is finished", async () => {
    pipeline = await startPipeline("reshard-paused", { shards: 2 });
    const p = pipeline;
    // A customer who moves from shard 1 to shard 0, whose thank-you failed for good.
    let n = 0;
    while (
      !(customerShard(`cus-paused-${n}`, 2) === 1 && customerShard(`cus-paused-${n}`, 3) === 0)
    )
      n++;
    const failing = `cus-paused-${n}`;
    await buyBigTickets(p, [failing, ...CUSTOMERS]);
    await p.worker?.close();
    p.worker = undefined;
    const oldQueues = queuesOf(p, 2);
    await failThankYou(
      p.redis,
      shardStores(p.redis, p.prefix, 2).of(1).store,
      oldQueues.of(1),
      `evt-b-${failing}`,
      BIG_THANKS,
    );
    // An operator paused shard 0's queue, whose name is the same under any count.
    await oldQueues.of(0).pause();
    await Promise.all(oldQueues.made().map((queue) => queue.close()));
    const pendingBefore = await pendingOf(p);

    expect(await reshardTo(p, 3, "--dry-run")).toMatchObject({ queuesPaused: 1 });
    // The first run dies after moving the jobs (the failed one into the paused queue).
    await expect(reshardKilledBefore(p, 3, "moving the schedule")).rejects.toThrow("killed");
    expect(await reshardTo(p, 3)).toMatchObject({ from: 2, to: 3, queuesPaused: 3 });
    const queues = queuesOf(p, 3);
    for (let shard = 0; shard < 3; shard++) expect(await queues.of(shard).isPaused()).toBe(true);
    const failed = await queues.of(0).getJob(followUpJobId(`evt-b-${failing}`, BIG_THANKS));
    expect(await failed?.getState()).toBe("failed");
    expect(await pendingOf(p)).toBe(pendingBefore);
    // Nothing is sent while the queues stay paused. What each queue's events stream held before
    // the worker came: every resume and every job taken writes to it (in the same script).
    const streamEnds = await Promise.all(
      queues.all().map(async (queue) => {
        const [last] = await p.redis.xrevrange(queue.keys.events as string, "+", "-", "COUNT", 1);
        return last?.[0] ?? "0-0";
      }),
    );
    await workerWith(p, 3);
    for (const id of CUSTOMERS)
      await (await queues.ofCustomer(id).getJob(followUpJobId(`evt-b-${id}`, BIG_THANKS)))
        ?.promote()
        .catch(() => undefined);
    // The worker is on every queue, ready to take what it may; no queue was resumed since and no
    // job taken, so none can be while they stay paused; the thank-yous wait untouched.
    for (const [shard, queue] of queues.all().entries()) {
      expect(await queue.getWorkersCount()).toBeGreaterThan(0);
      expect(await queue.isPaused()).toBe(true);
      const since = await p.redis.xrange(queue.keys.events as string, `(${streamEnds[shard]}`, "+");
      const written = since.map(([, fields]) => fields[fields.indexOf("event") + 1]);
      expect(written).not.toContain("resumed");
      expect(written).not.toContain("active");
    }
    for (const id of CUSTOMERS) {
      const job = await queues.ofCustomer(id).getJob(followUpJobId(`evt-b-${id}`, BIG_THANKS));
      expect(job?.processedOn).toBeUndefined();
    }
    expect(p.sink.messages).toHaveLength(0);
    await Promise.all(queues.made().map((queue) => queue.close()));
  });

  it("says so when no deployment is under the prefix (a typo, say), rather than 'nothing to do'", async () => {
    pipeline = await startPipeline("reshard-nobody", { startWorker: false });
    const p = pipeline;
    process.env = { ...savedEnv, ...p.envVars, QUEUE_PREFIX: `${p.prefix}-typo` };
    delete process.env.FOLLOW_UP_SHARDS;
    const io = captureIo();
    expect(await runReshard({ to: "4", by: "alice" }, io)).toBe(0);
    expect(io.output()).toBe(
      "no deployment under this QUEUE_PREFIX (no worker has run there): recorded 4 shards for its first worker; check QUEUE_PREFIX if you expected one\n",
    );
    await p.redis.del(new StoreKeys(`${p.prefix}-typo`).shardCount());
  });

  it("finds a customer's shard from the hash their keys carry", () => {
    for (const id of ["cus-1", "ana@example.com", "x"]) {
      for (const shards of [1, 2, 5, 16, 1024]) {
        const hash = new StoreKeys(p0).customerHistory(id).split(":c:")[1] ?? "";
        expect(shardOfIdHash(hash, shards)).toBe(customerShard(id, shards));
      }
    }
  });

  it("refuses while a worker runs (a dry run runs beside it), and workers refuse while a change is under way", async () => {
    pipeline = await startPipeline("reshard-refused", { shards: 2 });
    const p = pipeline;
    process.env = { ...savedEnv, ...p.envVars };
    delete process.env.FOLLOW_UP_SHARDS;
    await expect(runReshard({ to: "4" }, captureIo())).rejects.toThrow(
      /worker connection\(s\) are on this deployment's queues: stop every worker/,
    );
    // A dry run reads only: it runs beside the worker, says so, and marks nothing.
    const dry = captureIo();
    expect(await runReshard({ to: "4", dryRun: true }, dry)).toBe(0);
    expect(dry.output()).toMatch(
      /would change the shard count from 2 to 4 \(nothing changed\):[\s\S]* worker connection\(s\) are on the queues now, so these counts are a snapshot/,
    );
    const dryJson = captureIo();
    await runReshard({ to: "4", dryRun: true, json: true }, dryJson);
    expect(JSON.parse(dryJson.output())).toMatchObject({ from: 2, to: 4, dryRun: true });
    expect(JSON.parse(dryJson.output()).workersConnected).toBeGreaterThan(0);
    expect(await p.redis.exists(new StoreKeys(p.prefix).reshardMark())).toBe(0);
    await p.worker?.close();
    p.worker = undefined;
    await p.redis.set(
      new StoreKeys(p.prefix).reshardMark(),
      JSON.stringify({ from: 2, to: 4, startedAt: "2026-12-02T10:00:00.000Z" }),
    );
    await expect(workerWith(p, 4)).rejects.toThrow(
      'a change of the shard count from 2 to 4 (followups reshard, started 2026-12-02T10:00:00.000Z) has not finished: run "followups reshard --to 4" again',
    );
    await expect(runReshard({ to: "3" }, captureIo())).rejects.toThrow(
      'a change of the shard count from 2 to 4 is under way: finish it first with "followups reshard --to 4"',
    );
    for (const to of ["two", "0", "1025", "1.5"])
      await expect(runReshard({ to }, captureIo())).rejects.toMatchObject({
        code: 2,
        message: `--to: expected the new shard count, a whole number from 1 to 1024, got "${to}"`,
      });
    // Run again, it finishes.
    const io = captureIo();
    expect(await runReshard({ to: "4", json: true }, io)).toBe(0);
    expect(JSON.parse(io.output())).toMatchObject({ from: 2, to: 4 });
    await workerWith(p, 4);
  });

  it("refuses while an operator command runs (an erasure under way would leave what the move copied), and commands refuse while a change is under way", async () => {
    const p = await boughtWithWorkerStopped("reshard-operator");
    const pendingBefore = await pendingOf(p);
    // An operator command (followups erase, cancel, resolve, …) that began before the reshard:
    // its customer's keys, read under the old count, would be moved under it as it changes them.
    process.env = { ...savedEnv, ...p.commandEnv };
    const command = await operatorCommandAtWork(p.configDir);
    await expect(runReshard({ to: "4" }, captureIo())).rejects.toThrow(
      /an operator command \(pid \d+ on .+, started .+\) is running on this deployment: wait for it to finish/,
    );
    // Refused before anything moved: no mark left behind, nothing moved.
    expect(await p.redis.exists(new StoreKeys(p.prefix).reshardMark())).toBe(0);
    expect(await p.redis.get(new StoreKeys(p.prefix).shardCount())).toBe("2");
    command.finish();
    await command.done;
    // A command that begins once a change is marked refuses, and leaves no mark of its own.
    const mark = new StoreKeys(p.prefix).reshardMark();
    await p.redis.set(
      mark,
      JSON.stringify({ from: 2, to: 4, startedAt: "2026-12-07T09:00:00.000Z" }),
    );
    await expect(withOperatorTools(p.configDir, async () => 0)).rejects.toThrow(
      "a change of the shard count from 2 to 4 (followups reshard, started 2026-12-07T09:00:00.000Z) has not finished",
    );
    const commandMarks: string[] = [];
    for await (const batch of scanKeys(p.redis, new StoreKeys(p.prefix).operatorCommands()))
      commandMarks.push(...batch);
    expect(commandMarks).toEqual([]);
    expect(await reshardTo(p, 4)).toMatchObject({ from: 2, to: 4 });
    expect(await pendingOf(p)).toBe(pendingBefore);
  });

  it("goes ahead while an operator command that only reads runs (customer, schedule, report, …): such a command takes no mark", async () => {
    const p = await boughtWithWorkerStopped("reshard-reader");
    const pendingBefore = await pendingOf(p);
    process.env = { ...savedEnv, ...p.commandEnv };
    const reader = await operatorCommandAtWork(p.configDir, { readOnly: true });
    try {
      expect(await reshardTo(p, 4)).toMatchObject({ from: 2, to: 4 });
    } finally {
      reader.finish();
      await reader.done;
    }
    expect(await pendingOf(p)).toBe(pendingBefore);
  });

  it("stops a worker's start when a reshard is marked after its first check, before it takes a job", async () => {
    pipeline = await startPipeline("reshard-race", { shards: 2, startWorker: false });
    const p = pipeline;
    const mark = new StoreKeys(p.prefix).reshardMark();
    // The moment the starting worker has read the mark (and found none), a reshard marks the
    // Redis: it then counts no worker on the queues, since this one has not connected them yet.
    const nodes = isCluster(p.redis) ? p.redis.nodes("master") : [p.redis];
    // redis-cli's MONITOR (ioredis's monitor mode can take a command's reply for its output).
    const monitors = nodes.map((node) =>
      spawn("redis-cli", [
        "-h",
        node.options.host ?? "127.0.0.1",
        "-p",
        String(node.options.port),
        "monitor",
      ]),
    );
    let seen = false;
    const marked = new Promise<void>((resolve) => {
      for (const monitor of monitors)
        createInterface({ input: monitor.stdout }).on("line", (line) => {
          if (seen || !line.toLowerCase().includes(`"get" "${mark.toLowerCase()}"`)) return;
          seen = true;
          void p.redis
            .set(mark, JSON.stringify({ from: 2, to: 4, startedAt: "2026-12-04T08:00:00.000Z" }))
            .then(() => resolve());
        });
    });
    // MONITOR answers OK once it is on.
    await Promise.all(
      monitors.map(
        (monitor) =>
          new Promise((resolve) =>
            createInterface({ input: monitor.stdout }).once("line", resolve),
          ),
      ),
    );
    await p.publisher.publish(
      purchaseInput({
        id: "evt-race",
        orderId: "ord-race",
        customer: { id: "cus-race" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    try {
      await expect(workerWith(p, 2)).rejects.toThrow(
        "a change of the shard count from 2 to 4 (followups reshard, started 2026-12-04T08:00:00.000Z) has not finished",
      );
      await marked;
    } finally {
      for (const monitor of monitors) monitor.kill();
    }
    // It took no job and left no worker connected: the reshard goes on alone.
    const input = new Queue(PURCHASE_EVENTS_QUEUE, {
      connection: p.redis,
      prefix: queuePrefix(p.prefix, PURCHASE_EVENTS_QUEUE, p.env.REDIS_CLUSTER),
    });
    try {
      expect(await input.getWaitingCount()).toBe(1);
      expect(await input.getWorkersCount()).toBe(0);
    } finally {
      await input.close();
    }
  });
});

const p0 = "reshard-unit";
