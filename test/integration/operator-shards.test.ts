import { Queue, UnrecoverableError, Worker } from "bullmq";
import { DateTime } from "luxon";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { runCustomer } from "../../src/cli/customer-command.js";
import { runReplan } from "../../src/cli/replan-command.js";
import { runSchedule } from "../../src/cli/schedule-command.js";
import type { RuleSet } from "../../src/domain/rules.js";
import { acceptEventWith } from "../../src/http-bindings.js";
import type { FollowUpMetrics } from "../../src/metrics.js";
import { createOperatorTools, type OperatorTools } from "../../src/operations/operator-tools.js";
import { previewStep } from "../../src/operations/preview-step.js";
import type { CustomerTimeline } from "../../src/operations/timeline.js";
import type { EventPublisher } from "../../src/publisher.js";
import {
  FOLLOW_UPS_QUEUE,
  type FollowUpJobData,
  followUpJobId,
  queuePrefix,
} from "../../src/queue/names.js";
import type { RulePreview } from "../../src/reports/replan-preview.js";
import { CustomerIndex } from "../../src/store/customer-index.js";
import { customerShard, StoreKeys, shardScope, shardTag } from "../../src/store/keys.js";
import { OrderStore } from "../../src/store/order-store.js";
import { createRedisClient, type RedisClient } from "../../src/store/redis-client.js";
import { RulesGenerations } from "../../src/store/rules-generations.js";
import { claimShardCount, type ShardStores, Shards, shardStores } from "../../src/store/shards.js";
import type { ComposeMessage } from "../../src/templates/compose-message.js";
import { captureIo } from "../support/capture-io.js";
import {
  item,
  purchase,
  purchaseInput,
  SHIPPED_CONFIG_DIR,
  shippedRules,
} from "../support/fixtures.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";

/**
 * The operator surface on a deployment of four shards on one Redis: customers, orders and steps
 * are found in the shard their customer lives in, whichever it is, and erasure clears that shard.
 */

const SHARDS = 4;
const DAY = 86_400_000;
const THANK_YOU = "big-ticket.thank-you";
const CHECK_IN = "big-ticket.check-in";

/** The cluster run (vitest.cluster.config.ts) runs this file on a Redis Cluster too. */
const onCluster = inject("redisCluster");
let redis: RedisClient;
let rules: RuleSet;
let prefix: string;
let stores: Shards<ShardStores>;
let queues: Shards<Queue<FollowUpJobData>>;
let tools: OperatorTools;
let worker: Worker | undefined;
const savedEnv = { ...process.env };

beforeAll(async () => {
  redis = createRedisClient(inject("redisUrl"), onCluster, { maxRetriesPerRequest: null });
  rules = await shippedRules();
});
afterAll(async () => {
  redis.disconnect();
});
beforeEach(() => {
  prefix = uniquePrefix("operator-shards");
  stores = shardStores(redis, prefix, SHARDS);
  queues = new Shards(
    SHARDS,
    (shard) =>
      new Queue<FollowUpJobData>(FOLLOW_UPS_QUEUE, {
        connection: redis,
        prefix: queuePrefix(prefix, FOLLOW_UPS_QUEUE, onCluster, shard, SHARDS),
      }),
  );
  tools = createOperatorTools({
    redis,
    prefix,
    shards: SHARDS,
    rules: () => rules,
    followUps: queues,
    sendLeaseMs: 120_000,
    now: Date.now,
  });
});
afterEach(async () => {
  await worker?.close();
  worker = undefined;
  for (const queue of queues.made()) await queue.close();
  await deleteKeysWithPrefix(redis, prefix);
  process.env = { ...savedEnv };
});

/** A customer id of each shard: `customers[n]` lives in shard n. */
const customers = Array.from({ length: SHARDS }, (_, shard) => {
  for (let n = 0; ; n++) {
    const id = `cus-${n}`;
    if (customerShard(id, SHARDS) === shard) return id;
  }
});

/**
 * A purchase of the shard's customer as intake leaves it: its history, its two steps (the
 * check-in waiting in the compact schedule), its order link, its addresses indexed, and a job
 * waiting for each step in the shard's follow-ups queue.
 */
async function buy(shard: number) {
  const customerId = customers[shard] ?? "";
  const eventId = `evt-s${shard}`;
  const now = Date.now();
  const event = purchase({
    id: eventId,
    orderId: `ord-s${shard}`,
    occurredAt:
      DateTime.fromMillis(now).toUTC().startOf("second").toISO({ suppressMilliseconds: true }) ??
      "",
    customer: { id: customerId, email: `shard${shard}@example.com`, phone: `+4420794600${shard}0` },
    items: [item("televisions", "899.00")],
  });
  const { store, history } = stores.of(shard);
  await history.recordPurchase(event, [`fp-${eventId}`], 365 * DAY, 120 * DAY);
  await store.schedule(
    event,
    now + 120 * DAY,
    [
      {
        stepId: THANK_YOU,
        dueAt: now + 60_000,
        channel: "email",
        kind: "thank-you",
        ruleId: "big-ticket",
        inSchedule: false,
      },
      {
        stepId: CHECK_IN,
        dueAt: now + 90 * DAY,
        channel: "sms",
        kind: "check-in",
        ruleId: "big-ticket",
        inSchedule: true,
      },
    ],
    now,
    1,
  );
  await new OrderStore(redis, prefix).linkPurchase(
    event.orderId,
    eventId,
    shard,
    120 * DAY,
    now,
    await new CustomerIndex(redis, prefix).filingOf(event, 120 * DAY),
  );
  for (const stepId of [THANK_YOU, CHECK_IN])
    await queues
      .of(shard)
      .add(
        "email",
        { e: eventId, s: stepId },
        { jobId: followUpJobId(eventId, stepId), delay: DAY },
      );
  return { customerId, eventId, event };
}

async function buyInEveryShard() {
  const bought = [];
  for (let shard = 0; shard < SHARDS; shard++) bought.push(await buy(shard));
  return bought;
}

const stateOf = async (shard: number, eventId: string, stepId: string) =>
  (await stores.of(shard).store.stepRecords(eventId, [stepId])).get(stepId)?.state;

describe("operator tools on four shards", () => {
  it("finds customers, orders and addresses in whichever shard the customer lives", async () => {
    const bought = await buyInEveryShard();
    expect(new Set(customers.map((id) => customerShard(id, SHARDS)))).toEqual(
      new Set([0, 1, 2, 3]),
    );
    for (const { customerId, eventId } of bought) {
      const timeline = await tools.customer(customerId);
      expect(timeline.customer.id).toBe(customerId);
      expect(timeline.purchases.map((p) => p.eventId)).toEqual([eventId]);
      expect(timeline.purchases[0]?.steps.map((s) => [s.ref, s.state])).toEqual([
        [`${eventId}/${THANK_YOU}`, "scheduled"],
        [`${eventId}/${CHECK_IN}`, "scheduled"],
      ]);
    }
    const [found] = await tools.customersByAddress("SHARD3@example.com");
    expect(found?.customer.id).toBe(customers[3]);
    const order = await tools.order("ord-s3");
    expect(order).toMatchObject({ orderId: "ord-s3", customer: { id: customers[3] } });
    expect(order.purchases.map((p) => p.eventId)).toEqual(["evt-s3"]);
    await expect(tools.customer("cus-nobody")).rejects.toMatchObject({ kind: "not-found" });
    await expect(tools.order("ord-none")).rejects.toMatchObject({ kind: "not-found" });
  });

  it("cancels and resends a step named <eventId>/<stepId> in its event's shard and queue", async () => {
    await buyInEveryShard();
    const cancelled = await tools.cancel({ step: `evt-s3/${CHECK_IN}` }, { by: "alice" });
    expect(cancelled.cancelled).toEqual([`evt-s3/${CHECK_IN}`]);
    expect(await stateOf(3, "evt-s3", CHECK_IN)).toBe("cancelled");
    expect(await queues.of(3).getJob(followUpJobId("evt-s3", CHECK_IN))).toBeUndefined();
    // The other shards' steps of the same name are untouched.
    expect(await stateOf(1, "evt-s1", CHECK_IN)).toBe("scheduled");
    await expect(
      tools.cancel({ step: `evt-nowhere/${CHECK_IN}` }, { by: "alice" }),
    ).rejects.toMatchObject({
      kind: "not-found",
      message: `no follow-up evt-nowhere/${CHECK_IN} is known`,
    });

    // A sent thank-you is resent through the shard's own queue.
    const { store } = stores.of(3);
    const now = Date.now();
    expect((await store.claim("evt-s3", THANK_YOU, now, 60_000)).claimed).toBe(true);
    await store.transition("evt-s3", THANK_YOU, ["sending"], { state: "sent" }, now);
    const resent = await tools.resend(`evt-s3/${THANK_YOU}`, "alice");
    expect(await stateOf(3, "evt-s3", THANK_YOU)).toBe("scheduled");
    expect((await queues.of(3).getJob(resent.jobId))?.data).toEqual({ e: "evt-s3", s: THANK_YOU });
    expect(await queues.of(0).getJob(resent.jobId)).toBeUndefined();
    await expect(tools.resend(`evt-nowhere/${THANK_YOU}`, "alice")).rejects.toMatchObject({
      kind: "not-found",
    });

    // Cancelling a customer's or an order's steps finds them in the shard too.
    expect((await tools.cancel({ order: "ord-s2" }, { by: "alice" })).cancelled).toHaveLength(2);
    expect(
      (await tools.cancel({ customer: customers[1] ?? "" }, { by: "alice" })).cancelled,
    ).toHaveLength(2);
    expect(await stateOf(2, "evt-s2", THANK_YOU)).toBe("cancelled");
    expect(await stateOf(1, "evt-s1", THANK_YOU)).toBe("cancelled");
    expect(await stateOf(0, "evt-s0", THANK_YOU)).toBe("scheduled");
  });

  it("lists and retries failed follow-ups of every shard's queue", async () => {
    await buyInEveryShard();
    const { store } = stores.of(2);
    const now = Date.now();
    await store.claim("evt-s2", THANK_YOU, now, 60_000);
    await store.transition(
      "evt-s2",
      THANK_YOU,
      ["sending"],
      { state: "failed", attempts: 1, reason: { code: "smtp-550", text: "mailbox unavailable" } },
      now,
    );
    // The step's job fails in shard 2's queue.
    const jobId = followUpJobId("evt-s2", THANK_YOU);
    await (await queues.of(2).getJob(jobId))?.promote();
    const failing = new Worker<FollowUpJobData, unknown>(
      FOLLOW_UPS_QUEUE,
      async () => {
        throw new UnrecoverableError("mailbox unavailable");
      },
      { connection: redis, prefix: queuePrefix(prefix, FOLLOW_UPS_QUEUE, onCluster, 2, SHARDS) },
    );
    worker = failing;
    await new Promise<void>((resolve) => failing.once("failed", () => resolve()));
    await failing.close();

    const failed = await tools.failed({});
    expect(failed.map((f) => f.ref)).toEqual([`evt-s2/${THANK_YOU}`]);
    const { requeued } = await tools.retryFailed({ refs: [`evt-s2/${THANK_YOU}`] }, "alice");
    expect(requeued).toEqual([`evt-s2/${THANK_YOU}`]);
    expect(await stateOf(2, "evt-s2", THANK_YOU)).toBe("scheduled");
    expect(await queues.of(2).getFailedCount()).toBe(0);
    expect(await queues.of(2).getJob(`${jobId}-q1`)).toBeDefined();
    expect(await tools.failed({})).toEqual([]);
  });

  it("resolves a reply and previews a step in the event's shard", async () => {
    await buyInEveryShard();
    const filed = await stores.of(3).replies.add("evt-s3", CHECK_IN, {
      text: "Broken on arrival",
      receivedAt: Date.now(),
      channel: "sms",
    });
    const timeline = await tools.customer(customers[3] ?? "");
    const [reply] = timeline.purchases[0]?.steps[1]?.replies ?? [];
    expect(reply?.text).toBe("Broken on arrival");
    // As the timeline names it, and as an operator may type it without the shard.
    const typed = `evt-s3/${CHECK_IN}/${filed?.n}`;
    const resolved = await tools.resolve(reply?.id ?? typed, { by: "alice", note: "replaced" });
    expect(resolved.by).toBe("alice");
    await expect(tools.resolve(typed, { by: "bob" })).rejects.toMatchObject({ kind: "conflict" });
    await expect(tools.resolve(`evt-nowhere/${CHECK_IN}/1`, { by: "bob" })).rejects.toMatchObject({
      kind: "not-found",
    });

    const compose = (async (input) => ({
      channel: "email",
      to: input.event.customer.email ?? "",
      subject: `for ${input.stepId}`,
      text: "hello",
    })) as ComposeMessage;
    const preview = await previewStep(
      { shards: stores, rules: () => rules, compose, orders: new OrderStore(redis, prefix) },
      `evt-s3/${THANK_YOU}`,
    );
    expect(preview).toMatchObject({ state: "scheduled", to: "shard3@example.com" });
  });

  it("erases a customer's keys in their shard, and leaves the other shards' customers", async () => {
    const bought = await buyInEveryShard();
    const { customerId } = bought[3] ?? { customerId: "" };
    const keys = new StoreKeys(shardScope(prefix, 3, SHARDS));
    const erasureKey = await stores.of(3).history.erasureKey(customerId);
    expect(erasureKey.startsWith(`${shardTag(prefix, 3, SHARDS)}:`)).toBe(true);
    expect(await redis.exists(keys.customerHistory(customerId))).toBe(1);
    expect(await redis.hexists(keys.eventRecord("evt-s3"), "p0")).toBe(1);

    const receipt = await tools.erase(customerId, { by: "alice" });
    expect(receipt).toMatchObject({ purchases: 1, stepsCancelled: 2, jobsRemoved: 2 });
    expect(await redis.exists(keys.customerHistory(customerId))).toBe(0);
    expect(await redis.hexists(keys.eventRecord("evt-s3"), "p0")).toBe(0);
    expect(await redis.exists(keys.order("ord-s3"))).toBe(0);
    expect((await new OrderStore(redis, prefix).get("ord-s3")).events).toEqual([]);
    expect(await redis.exists(erasureKey)).toBe(1);
    expect(await queues.of(3).getJobCounts("delayed")).toEqual({ delayed: 0 });
    await expect(tools.customersByAddress("shard3@example.com")).rejects.toMatchObject({
      kind: "not-found",
    });
    // Everyone else is as they were.
    for (const shard of [0, 1, 2]) {
      const timeline: CustomerTimeline = await tools.customer(customers[shard] ?? "");
      expect(timeline.purchases).toHaveLength(1);
      expect(await queues.of(shard).getJobCounts("delayed")).toEqual({ delayed: 2 });
    }
  });

  it("refuses an HTTP event whose id the customer's shard took for other content", async () => {
    await buyInEveryShard();
    const published: string[] = [];
    const accept = acceptEventWith({
      publisher: {
        publish: async (input: { id: string }) => {
          published.push(input.id);
          return { eventId: input.id };
        },
      } as unknown as EventPublisher,
      shards: stores,
      metrics: { eventsIdReused: { inc: () => undefined } } as unknown as FollowUpMetrics,
      clock: DateTime.utc,
    });
    const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
    const reused = purchaseInput({
      id: "evt-s3",
      orderId: "ord-other",
      occurredAt,
      customer: { id: customers[3] },
    });
    expect(await accept(reused)).toEqual({ ok: false, reusedId: "evt-s3" });
    const fresh = purchaseInput({
      id: "evt-new",
      orderId: "ord-new",
      occurredAt,
      customer: { id: customers[3] },
    });
    expect(await accept(fresh)).toEqual({ ok: true, eventId: "evt-new" });
    expect(published).toEqual(["evt-new"]);
  });
});

describe("operator commands on four shards", () => {
  const useRedis = (env: Record<string, string> = {}) => {
    delete process.env.FOLLOW_UP_SHARDS;
    Object.assign(process.env, {
      REDIS_URL: inject("redisUrl"),
      REDIS_CLUSTER: String(onCluster),
      QUEUE_PREFIX: prefix,
      ...env,
    });
  };

  it("use the shard count the deployment recorded, and refuse a FOLLOW_UP_SHARDS that differs", async () => {
    // As a deployment's first worker does, before any state is written.
    expect(await claimShardCount(redis, prefix, SHARDS)).toBe(SHARDS);
    await buyInEveryShard();
    useRedis();
    const io = captureIo();
    expect(await runCustomer(customers[3], { config: SHIPPED_CONFIG_DIR, json: true }, io)).toBe(0);
    expect((JSON.parse(io.output()) as CustomerTimeline).customer.id).toBe(customers[3]);

    // Every shard's pending counts, and every shard's schedule for the re-plan preview.
    const schedule = captureIo();
    expect(
      await runSchedule({ config: SHIPPED_CONFIG_DIR, days: "120", json: true }, schedule),
    ).toBe(0);
    const days = (JSON.parse(schedule.output()) as { days: { count: number }[] }).days;
    expect(days.reduce((sum, day) => sum + day.count, 0)).toBe(2 * SHARDS);
    // The purchases were planned under generation 1, some earlier rules a worker loaded.
    await new RulesGenerations(redis, prefix).generationOf("earlier-rules");
    const replan = captureIo();
    expect(await runReplan({ config: SHIPPED_CONFIG_DIR, dryRun: true, json: true }, replan)).toBe(
      0,
    );
    const previewed = (JSON.parse(replan.output()) as { rules: RulePreview[] }).rules;
    const counted = previewed.reduce(
      (sum, rule) =>
        sum +
        rule.unchanged +
        rule.cancelled +
        rule.skipped +
        rule.earlier.count +
        rule.later.count,
      0,
    );
    // Both steps of each shard's purchase (the check-in is in the schedule; its event is re-planned).
    expect(counted).toBe(2 * SHARDS);

    useRedis({ FOLLOW_UP_SHARDS: String(SHARDS) });
    expect(
      await runCustomer(customers[2], { config: SHIPPED_CONFIG_DIR, json: true }, captureIo()),
    ).toBe(0);
    useRedis({ FOLLOW_UP_SHARDS: "2" });
    await expect(
      runCustomer(customers[3], { config: SHIPPED_CONFIG_DIR, json: true }, captureIo()),
    ).rejects.toMatchObject({
      code: 1,
      message: expect.stringMatching(
        /^FOLLOW_UP_SHARDS is 2, but this deployment's Redis records 4 shards/,
      ),
    });
    await expect(
      runSchedule({ config: SHIPPED_CONFIG_DIR, days: "30", json: true }, captureIo()),
    ).rejects.toMatchObject({ code: 1 });
  });
});
