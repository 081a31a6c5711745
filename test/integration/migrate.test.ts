import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Queue, Worker } from "bullmq";
import { DateTime } from "luxon";
import { afterEach, describe, expect, inject, it } from "vitest";
import { runCode } from "../../src/cli/code-command.js";
import { CommandError, EXIT } from "../../src/cli/io.js";
import { runMigrate } from "../../src/cli/migrate-command.js";
import { runPublish } from "../../src/cli/publish-command.js";
import { runReshard } from "../../src/cli/reshard-command.js";
import { type MigrateOptions, migrate } from "../../src/operations/migrate.js";
import { takeMoveLease } from "../../src/operations/move-lease.js";
import { createOperatorTools } from "../../src/operations/operator-tools.js";
import {
  eventJobId,
  FOLLOW_UPS_QUEUE,
  type FollowUpJobData,
  followUpJobId,
  OWNER_ALERTS_QUEUE,
  OWNER_REPORTS_QUEUE,
  PURCHASE_EVENTS_QUEUE,
  queuePrefix,
} from "../../src/queue/names.js";
import { TOMBSTONE } from "../../src/store/key-layout.js";
import { customerShard, formerGlobalBase, StoreKeys, shardScope } from "../../src/store/keys.js";
import {
  createRedisClient,
  type RedisClient,
  redisNodesName,
} from "../../src/store/redis-client.js";
import { Shards, shardStores } from "../../src/store/shards.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import type { WorkerHandle } from "../../src/worker.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput, shippedRules } from "../support/fixtures.js";
import { backToFormerGlobalKeys } from "../support/former-layout.js";
import {
  failThankYou,
  operatorCommandAtWork,
  pendingTotal,
  workerFromEnv,
} from "../support/operator-runs.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  startPipeline,
} from "../support/pipeline-harness.js";
import { deleteKeysWithPrefix, keysMatching } from "../support/redis-namespace.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";
import { settledSteps } from "../support/settled-queue.js";

/**
 * `followups migrate`: a deployment on one Redis moves, with its workers stopped, to another Redis
 * (the suite's: a Redis Cluster in the cluster run). Afterwards workers on the new Redis send what
 * was pending exactly once, keep the opt-outs and list the failed follow-up, the counts add up as
 * before, and workers refuse the old Redis.
 */

const SHARDS = 2;
const THANKS = "big-ticket.thank-you";
const CUSTOMERS = Array.from({ length: 6 }, (_, i) => `cus-migrate-${i}`);

let pipeline: PipelineHarness | undefined;
let source: RedisServer | undefined;
let replica: RedisServer | undefined;
let target: RedisClient | undefined;
/** A new Redis of the test's own (one it freezes mid-move), instead of the suite's. */
let ownTarget: RedisServer | undefined;
/** A second deployment's Redis. */
let otherSource: RedisServer | undefined;
const workers: WorkerHandle[] = [];
const savedEnv = { ...process.env };
afterEach(async () => {
  process.env = { ...savedEnv };
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
  if (target && pipeline) await deleteKeysWithPrefix(target, pipeline.prefix);
  target?.disconnect();
  target = undefined;
  await pipeline?.close();
  pipeline = undefined;
  await replica?.stop();
  replica = undefined;
  await ownTarget?.stop();
  ownTarget = undefined;
  await otherSource?.stop();
  otherSource = undefined;
  await source?.stop();
  source = undefined;
});

const targetUrl = () => inject("redisUrl");
const targetCluster = () => inject("redisCluster");

/** The pipeline's environment pointed at the new Redis. */
const onTarget = (p: PipelineHarness) => ({
  ...p.envVars,
  REDIS_URL: targetUrl(),
  REDIS_CLUSTER: String(targetCluster()),
});

const workerOn = (env: Record<string, string>) => workerFromEnv(env, workers);

/** `followups migrate` as an operator runs it against the pipeline's (old) Redis. */
async function migrateTo(p: PipelineHarness, ...flags: "--dry-run"[]) {
  process.env = { ...savedEnv, ...p.envVars };
  const io = captureIo();
  const code = await runMigrate(
    {
      toUrl: targetUrl(),
      ...(targetCluster() && { toCluster: true }),
      ...(flags.includes("--dry-run") && { dryRun: true }),
      json: true,
      by: "test",
    },
    io,
  );
  expect(code).toBe(0);
  return JSON.parse(io.output()) as Record<string, number | string | boolean>;
}

/** A deployment of SHARDS shards on a Redis of the test's own (`source`), its worker running. */
async function deploymentOnOwnRedis(label: string): Promise<PipelineHarness> {
  source = await startRedisServer();
  pipeline = await startPipeline(label, { redisUrl: source.url, cluster: false, shards: SHARDS });
  return pipeline;
}

/** The test's own Redis, the old one. */
function sourceUrl(): string {
  if (!source) throw new Error("no deployment on a Redis of the test's own");
  return source.url;
}

/** Stops the deployment's worker: a move runs with every worker stopped. */
async function stopWorker(p: PipelineHarness): Promise<void> {
  await p.worker?.close();
  p.worker = undefined;
}

/** A connection to the suite's Redis, the new one (`target`, closed after each test). */
function connectTarget(): RedisClient {
  target = createRedisClient(targetUrl(), targetCluster(), { maxRetriesPerRequest: null });
  return target;
}

/** migrate() from the test's own Redis to the suite's, as the command calls it. */
function migrateToTarget(p: PipelineHarness, more: Partial<MigrateOptions> = {}) {
  return migrate({
    source: p.redis,
    target: target ?? connectTarget(),
    prefix: p.prefix,
    sourceName: sourceUrl(),
    targetName: targetUrl(),
    by: "test",
    ...more,
  });
}

/** Both Redis marked, as by a run that stopped right after marking them. */
async function markedAsByStoppedRun(p: PipelineHarness): Promise<void> {
  const keys = new StoreKeys(p.prefix);
  const startedAt = new Date().toISOString();
  await p.redis.set(
    keys.movedMark(),
    JSON.stringify({ redis: redisNodesName(targetUrl()), startedAt }),
  );
  await (target ?? connectTarget()).set(
    keys.arrivingMark(),
    JSON.stringify({ redis: redisNodesName(sourceUrl()), startedAt }),
  );
}

/** An event that fails validation, published and failed: a failed job of the input queue. */
async function failedEvent(p: PipelineHarness, id: string) {
  await p.events.add("purchase.completed", { type: "purchase.completed", id }, { jobId: id });
  // Read once failed (read before, the job would lack its reason).
  return eventually(
    async () =>
      (await p.events.getJobState(id)) === "failed" ? await p.events.getJob(id) : undefined,
    `${id} to fail`,
  );
}

function queuesOn(redis: RedisClient, prefix: string, cluster: boolean) {
  return new Shards(
    SHARDS,
    (shard) =>
      new Queue<FollowUpJobData>(FOLLOW_UPS_QUEUE, {
        connection: redis,
        prefix: queuePrefix(prefix, FOLLOW_UPS_QUEUE, cluster, shard, SHARDS),
      }),
  );
}

const minutesAgo = (minutes: number) => DateTime.utc().minus({ minutes }).toISO() ?? "";
/** A purchase that plans nothing: `evt-<name>`, made `minutes` ago. */
const newspaper = (name: string, minutes: number) =>
  purchaseInput({
    id: `evt-${name}`,
    orderId: `ord-${name}`,
    occurredAt: minutesAgo(minutes),
    customer: { id: `cus-${name}`, email: `${name}@example.com` },
    items: [item("newspapers", "2.50")],
  });

describe("followups migrate", () => {
  it("names a Redis by its nodes and database, never its credentials", () => {
    expect(redisNodesName("redis://admin:S3cret@a.example:7000,rediss://:pw@b.example")).toBe(
      "redis://a.example:7000,rediss://b.example:6379",
    );
    expect(redisNodesName("redis://u:p@127.0.0.1:6380/5")).toBe("redis://127.0.0.1:6380/5");
    expect(redisNodesName("redis://127.0.0.1:6380/0")).toBe("redis://127.0.0.1:6380");
    expect(redisNodesName("not a url")).toBe("(an unreadable URL)");
  });

  it("moves a deployment to another Redis: what was pending goes once from there, and the old one is refused", async () => {
    const p = await deploymentOnOwnRedis("migrate");
    // A big-ticket purchase each: a thank-you due in two minutes (a delayed job in its shard's
    // queue) and a check-in in three months (the compact schedule).
    for (const id of CUSTOMERS)
      await p.publisher.publish(
        purchaseInput({
          id: `evt-m-${id}`,
          orderId: `ord-m-${id}`,
          occurredAt: minutesAgo(58),
          customer: { id, email: `${id}@example.com`, phone: "+44 20 7946 0958" },
          items: [item("big-ticket", "900.00")],
        }) as never,
      );
    for (const id of CUSTOMERS) await eventProcessed(p, `evt-m-${id}`);
    // One customer opts out of SMS.
    const optedOut = CUSTOMERS[1] as string;
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-1",
      occurredAt: DateTime.utc().toISO() ?? "",
      customerId: optedOut,
      channels: ["sms"],
    });
    await eventProcessed(p, "unsub-1");
    // An event that fails validation: a failed job of the input queue.
    await failedEvent(p, "evt-m-bad");
    await stopWorker(p);
    // An event published while the workers were stopped, a few minutes before the move.
    await p.events.add("purchase.completed", newspaper("m-waiting", 6), {
      jobId: "evt-m-waiting",
      timestamp: Date.now() - 5 * 60_000,
    });

    // One thank-you fails for good, as a bounced email would: its step and its job.
    const failing = CUSTOMERS[0] as string;
    const oldQueues = queuesOn(p.redis, p.prefix, false);
    await failThankYou(
      p.redis,
      shardStores(p.redis, p.prefix, SHARDS).ofCustomer(failing).store,
      oldQueues.ofCustomer(failing),
      `evt-m-${failing}`,
      THANKS,
    );
    await Promise.all(oldQueues.made().map((queue) => queue.close()));
    const pendingBefore = await pendingTotal(p.envVars, p.configDir, savedEnv);
    // Six check-ins and five thank-yous.
    expect(pendingBefore).toBe(11);

    // An operator paused the owners' alerts and reports with a queue tool: they stay paused after
    // the move (the reports queue's jobs are not copied, its pause is).
    for (const name of [OWNER_ALERTS_QUEUE, OWNER_REPORTS_QUEUE]) {
      const queue = new Queue(name, {
        connection: p.redis,
        prefix: queuePrefix(p.prefix, name, false),
      });
      await queue.pause();
      await queue.close();
    }

    // A dry run counts and changes nothing.
    const dry = await migrateTo(p, "--dry-run");
    expect(dry).toMatchObject({
      dryRun: true,
      shards: SHARDS,
      jobsCopied: 6,
      failedJobsCopied: 2,
      queuesPaused: 2,
    });
    expect(dry.keysCopied).toBeGreaterThan(CUSTOMERS.length * 2);
    const keys = new StoreKeys(p.prefix);
    expect(await p.redis.exists(keys.movedMark())).toBe(0);

    // An earlier run stopped right after marking both: workers refuse both Redis deployments,
    // and running it again finishes the move.
    target = connectTarget();
    await markedAsByStoppedRun(p);
    await expect(workerOn(p.envVars)).rejects.toThrow(
      /this deployment is moving to .*run the command again/,
    );
    await expect(workerOn(onTarget(p))).rejects.toThrow(
      /still being copied here from .*run "followups migrate" against the old Redis again/,
    );

    const done = await migrateTo(p);
    expect(done).toMatchObject({
      dryRun: false,
      shards: SHARDS,
      keysCopied: dry.keysCopied,
      jobsCopied: 6,
      failedJobsCopied: 2,
      queuesPaused: 2,
    });
    expect(String(done.to)).not.toContain("@");
    for (const name of [OWNER_ALERTS_QUEUE, OWNER_REPORTS_QUEUE]) {
      const queue = new Queue(name, {
        connection: target,
        prefix: queuePrefix(p.prefix, name, targetCluster()),
      });
      expect(await queue.isPaused()).toBe(true);
      await queue.close();
    }

    // The old Redis is refused from now on, by workers and by the command itself.
    await expect(workerOn(p.envVars)).rejects.toThrow(
      /this deployment moved to .* point REDIS_URL/,
    );
    // So are the commands that publish, change or read there (what they did would be lost).
    process.env = { ...savedEnv, ...p.envVars };
    const lateFile = path.join(tmpdir(), `${p.prefix}-late.json`);
    await writeFile(lateFile, JSON.stringify(newspaper("late-cli", 1)));
    for (const run of [
      () => runPublish(lateFile, {}, captureIo()),
      () => runReshard({ to: "3" }, captureIo()),
      () => runCode("K7QM-2XRD", {}, captureIo()),
    ])
      await expect(run()).rejects.toThrow(/^this deployment moved to .* point REDIS_URL/);
    await rm(lateFile);
    // A publisher not yet pointed at the new Redis: running the command again copies its event.
    await p.publisher.publish(newspaper("late", 1) as never);
    // An operator discarded the failed event on the new Redis: running the command again does
    // not bring it back.
    const movedEvents = new Queue(PURCHASE_EVENTS_QUEUE, {
      connection: target,
      prefix: queuePrefix(p.prefix, PURCHASE_EVENTS_QUEUE, targetCluster()),
    });
    expect(await (await movedEvents.getJob("evt-m-bad"))?.getState()).toBe("failed");
    await (await movedEvents.getJob("evt-m-bad"))?.remove();
    // Nor an event that moved with the rest and is gone from the new Redis since (taken in and
    // let go after its retention, as the test removes it here).
    expect(await movedEvents.getJob("evt-m-waiting")).toBeDefined();
    await (await movedEvents.getJob("evt-m-waiting"))?.remove();
    expect(await migrateTo(p)).toMatchObject({
      lateEvents: 1,
      keysCopied: 0,
      jobsCopied: 1,
      failedJobsCopied: 0,
    });
    expect(await movedEvents.getJob("evt-m-bad")).toBeUndefined();
    expect(await movedEvents.getJob("evt-m-waiting")).toBeUndefined();
    await movedEvents.close();

    // On the new Redis: the same counts, the opt-out, the failed follow-up, and each pending
    // thank-you sent once.
    const env = onTarget(p);
    expect(await pendingTotal(env, p.configDir, savedEnv)).toBe(pendingBefore);
    const suppressions = new SuppressionList(target, p.prefix);
    const optOuts = await suppressions.optOutsOf([
      { channel: "sms", who: { customerId: optedOut } },
    ]);
    expect([...optOuts.all]).toEqual(["sms"]);
    expect(await target.exists(keys.arrivingMark())).toBe(0);

    await workerOn(env);
    const newEvents = new Queue(PURCHASE_EVENTS_QUEUE, {
      connection: target,
      prefix: queuePrefix(p.prefix, PURCHASE_EVENTS_QUEUE, targetCluster()),
    });
    await eventually(
      async () =>
        (await (await newEvents.getJob(eventJobId("evt-late")))?.getState()) === "completed" ||
        undefined,
      "the late event taken in on the new Redis",
    );
    await newEvents.close();
    const newQueues = queuesOn(target, p.prefix, targetCluster());
    for (const id of CUSTOMERS.slice(1)) {
      const job = await eventually(
        () => newQueues.ofCustomer(id).getJob(followUpJobId(`evt-m-${id}`, THANKS)),
        `the thank-you job of ${id} on the new Redis`,
      );
      await job.promote().catch(() => undefined);
    }
    await p.sink.waitForMessages(CUSTOMERS.length - 1);
    // Every thank-you's job on the new Redis has finished, retries included: none sends again.
    await settledSteps(
      newQueues.all(),
      CUSTOMERS.map((id) => ({ eventId: `evt-m-${id}`, stepId: THANKS })),
      "the thank-yous on the new Redis",
    );
    expect(p.sink.messages).toHaveLength(CUSTOMERS.length - 1);
    expect(p.sink.messages.flatMap((m) => m.envelope.rcptTo).sort()).toEqual(
      CUSTOMERS.slice(1).map((id) => `${id}@example.com`),
    );

    const rules = await shippedRules();
    const tools = createOperatorTools({
      redis: target,
      prefix: p.prefix,
      shards: SHARDS,
      rules: () => rules,
      followUps: newQueues,
      events: p.events,
      outboxDir: p.outboxDir,
      sendLeaseMs: 120_000,
      now: Date.now,
    });
    expect((await tools.failed({})).map((f) => f.ref)).toEqual([`evt-m-${failing}/${THANKS}`]);
    // Each customer's record is in its shard there.
    const stores = shardStores(target, p.prefix, SHARDS);
    for (const id of CUSTOMERS) {
      const { store } = stores.of(customerShard(id, SHARDS));
      expect(await store.loadKept(`evt-m-${id}`)).toMatchObject({ customer: { id } });
    }
    await Promise.all(newQueues.made().map((queue) => queue.close()));
  });

  it("copies each key with what is left of its expiry (one in its last millisecond too), the re-planner's notes and their tries among them", async () => {
    const p = await deploymentOnOwnRedis("migrate-expiry");
    await stopWorker(p);
    // Two Redis of the test's own: the new one is not the suite's.
    ownTarget = await startRedisServer();
    target = createRedisClient(ownTarget.url, false, { maxRetriesPerRequest: null });
    const newRedis = target;
    const keys = new StoreKeys(shardScope(p.prefix, 1, SHARDS));
    const forever = keys.lastSent("cus-forever");
    const hour = keys.lastSent("cus-hour");
    const lastMs = keys.lastSent("cus-last-ms");
    await p.redis.set(forever, "a");
    await p.redis.set(hour, "b", "PX", 3_600_000);
    await p.redis.set(lastMs, "c", "PX", 3_600_000);
    // A purchase noted for a re-plan under newer rules, whose re-plans failed twice so far.
    await p.redis.sadd(keys.replanLater(), "evt-noted");
    await p.redis.pexpire(keys.replanLater(), 7 * 86_400_000);
    await p.redis.hset(keys.replanLaterTries(), "evt-noted", `2 ${Date.now() + 120_000}`);
    await p.redis.pexpire(keys.replanLaterTries(), 7 * 86_400_000);
    // PTTL answers 0 for a key read in its last millisecond (its expiry rounded down): read so
    // here, as a window of one millisecond cannot be hit on purpose.
    const reads = p.redis as unknown as { pttl: (...args: unknown[]) => Promise<number> };
    const pttl = reads.pttl.bind(p.redis);
    reads.pttl = async (...args: unknown[]) => (args[0] === lastMs ? 0 : pttl(...args));
    try {
      await expect(
        migrateToTarget(p, { target: newRedis, targetName: redisNodesName(ownTarget.url) }),
      ).resolves.toMatchObject({ dryRun: false, shards: SHARDS });
    } finally {
      reads.pttl = pttl;
    }
    expect(await newRedis.pttl(forever)).toBe(-1);
    const left = await newRedis.pttl(hour);
    expect(left).toBeGreaterThan(3_500_000);
    expect(left).toBeLessThanOrEqual(3_600_000);
    // Copied with the millisecond it had left, not made a key that never expires.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await newRedis.pttl(lastMs)).toBe(-2);
    expect(await newRedis.smembers(keys.replanLater())).toEqual(["evt-noted"]);
    expect(await newRedis.hgetall(keys.replanLaterTries())).toEqual(
      await p.redis.hgetall(keys.replanLaterTries()),
    );
    for (const noted of [keys.replanLater(), keys.replanLaterTries()])
      expect(await newRedis.pttl(noted)).toBeGreaterThan(7 * 86_400_000 - 60_000);
  });

  it("carries the attempts an event's intake has used: one waiting out its retry has no more attempts left on the new Redis than on the old", async () => {
    const p = await deploymentOnOwnRedis("migrate-intake-attempts");
    await stopWorker(p);
    // An event whose intake failed three times (Redis failing over, say) and waits a minute for
    // its fourth attempt: intake counts its attempts by the ones BullMQ started (8 at most).
    await p.events.add("purchase.completed", newspaper("retrying", 5), {
      jobId: "evt-retrying",
      delay: 60_000,
    });
    await p.redis.hset(p.events.toKey("evt-retrying"), "ats", 3);
    expect((await p.events.getJob("evt-retrying"))?.attemptsStarted).toBe(3);
    await migrateTo(p);
    const events = new Queue(PURCHASE_EVENTS_QUEUE, {
      connection: target ?? connectTarget(),
      prefix: queuePrefix(p.prefix, PURCHASE_EVENTS_QUEUE, targetCluster()),
    });
    try {
      const copied = await events.getJob("evt-retrying");
      expect(await copied?.getState()).toBe("delayed");
      expect(copied?.attemptsStarted).toBe(3);
    } finally {
      await events.close();
    }
  });

  it("carries a job's stalls and the failure BullMQ noted on it for stalling too often, by which the next worker to take it fails it rather than runs it", async () => {
    const p = await deploymentOnOwnRedis("migrate-stalled");
    await stopWorker(p);
    // A follow-up's job that took its worker down every time it ran (MAX_STALLED_COUNT 10):
    // BullMQ's stalled check counted it (stc) and noted its failure (defa), to be failed by the
    // next worker that takes it before anything runs it.
    const source = queuesOn(p.redis, p.prefix, false).of(0);
    const jobId = "evt-stalling-step";
    await source.add("follow-up", { e: "evt-stalling", s: "thank-you.thank-you" }, { jobId });
    await p.redis.hset(source.toKey(jobId), {
      stc: 11,
      defa: "job stalled more than allowable limit",
    });
    await source.close();
    await migrateTo(p);
    const queue = queuesOn(target ?? connectTarget(), p.prefix, targetCluster()).of(0);
    try {
      const copied = await queue.getJob(jobId);
      expect(await copied?.getState()).toBe("waiting");
      expect(copied?.stalledCounter).toBe(11);
      expect(copied?.deferredFailure).toBe("job stalled more than allowable limit");
    } finally {
      await queue.close();
    }
  });

  it("carries the upgrades' tombstones: a worker of an older version started on the new Redis fails its opt-out check there too", async () => {
    const p = await deploymentOnOwnRedis("migrate-tombstones");
    const former = formerGlobalBase(p.prefix);
    // A deployment that ran under key layout 5 with an opt-out, upgraded by this version's worker
    // (which leaves a string where each opt-out list of layouts 2 to 5 was), and which ran before
    // December 2026 too (the strings of that upgrade stay where they are).
    await new SuppressionList(p.redis, p.prefix).suppress("email", {
      customerId: "cus-migrate-off",
    });
    await stopWorker(p);
    await backToFormerGlobalKeys(p.redis, p.prefix, "5");
    for (const list of ["email", "sms"])
      await p.redis.set(`${p.prefix}:fu:suppressed:${list}`, TOMBSTONE);
    await workerOn(p.envVars);
    await Promise.all(workers.splice(0).map((worker) => worker.close()));
    const tombstones = [
      ...(await keysMatching(p.redis, `${former}suppressed:*`)),
      ...(await keysMatching(p.redis, `${p.prefix}:fu:suppressed:*`)),
    ];
    expect(tombstones.length).toBeGreaterThanOrEqual(8);

    expect(await migrateTo(p)).toMatchObject({ dryRun: false });
    target = connectTarget();
    const optOuts = new SuppressionList(target, p.prefix);
    expect(await optOuts.isSuppressed("email", { customerId: "cus-migrate-off" })).toBe(true);
    // Where a worker of layouts 2 to 5 (or of before December 2026) looks for opt-outs, it finds
    // a string on the new Redis as on the old one: it fails (WRONGTYPE) instead of finding none.
    for (const name of tombstones) {
      expect(await target.get(name), name).toBe(await p.redis.get(name));
      await expect(target.sismember(name, "k:anyone")).rejects.toThrow("WRONGTYPE");
    }
    // A worker of this version starts there as usual, the opt-out list still a list.
    await workerOn(onTarget(p));
    expect(await target.type(new StoreKeys(p.prefix).suppressions("email"))).toBe("set");
    expect(await optOuts.isSuppressed("email", { customerId: "cus-migrate-off" })).toBe(true);
  });

  it("runs one at a time: refused while a reshard or another migrate holds the deployment, whose hold is not copied", async () => {
    const p = await deploymentOnOwnRedis("migrate-twice");
    await stopWorker(p);
    process.env = { ...savedEnv, ...p.envVars };
    const reshardRun = await takeMoveLease(p.redis, p.prefix, "followups reshard");
    await expect(
      runMigrate({ toUrl: targetUrl(), toCluster: targetCluster() }, captureIo()),
    ).rejects.toThrow(/^followups reshard is running on this deployment already \(pid \d+ on /);
    await reshardRun.release();
    expect(await p.redis.exists(new StoreKeys(p.prefix).movedMark())).toBe(0);

    target = connectTarget();
    let second: Promise<number> | undefined;
    const first = migrateToTarget(p, {
      onPart: (part) => {
        if (part !== "copying the store's keys") return;
        second = runMigrate({ toUrl: targetUrl(), toCluster: targetCluster() }, captureIo());
        second.catch(() => undefined);
      },
    });
    await expect(first).resolves.toMatchObject({ dryRun: false, shards: SHARDS });
    await expect(second).rejects.toThrow(
      /^followups migrate is running on this deployment already \(pid \d+ on .+\): wait for it to finish/,
    );
    const keys = new StoreKeys(p.prefix);
    expect(await p.redis.exists(keys.moveLease())).toBe(0);
    expect(await target.exists(keys.moveLease())).toBe(0);
    await workerOn(onTarget(p));
  });

  it("keeps its marks when a run fails after copying some keys (the new Redis full, say): run again, it finishes", async () => {
    const p = await deploymentOnOwnRedis("migrate-half-copied");
    await p.publisher.publish(newspaper("half", 5) as never);
    await eventProcessed(p, "evt-half");
    await stopWorker(p);
    const keys = new StoreKeys(p.prefix);
    // An upgraded deployment's tombstone: copied first, whatever the order SCAN gives the rest.
    await p.redis.set(`${p.prefix}:fu:suppressed:email`, TOMBSTONE);
    target = connectTarget();
    // The new Redis fills up before the keys that tell a deployment is there are copied.
    const full = target as unknown as { restore: (...args: unknown[]) => Promise<unknown> };
    const restore = full.restore.bind(target);
    const telling = [keys.shardCount(), keys.rulesGenerations(), keys.scheduleIndex()];
    full.restore = async (...args: unknown[]) => {
      if (telling.includes(args[0] as string))
        throw new Error("OOM command not allowed when used memory > 'maxmemory'.");
      return restore(...args);
    };
    const run = () => migrateToTarget(p);
    await expect(run()).rejects.toThrow("OOM");
    expect(await target.get(`${p.prefix}:fu:suppressed:email`)).toBe(TOMBSTONE);
    // Keys were copied: the marks stay, so workers start on neither Redis until the move is
    // finished (taking them back would leave the new Redis with a partial copy that a later run
    // does not clear: what is erased or removed meanwhile would come back there).
    expect(await p.redis.exists(keys.movedMark())).toBe(1);
    expect(await target.exists(keys.arrivingMark())).toBe(1);
    await expect(workerOn(p.envVars)).rejects.toThrow("this deployment is moving to");
    full.restore = restore;
    await expect(run()).resolves.toMatchObject({ dryRun: false, shards: SHARDS });
    expect(await target.exists(keys.arrivingMark())).toBe(0);
    await workerOn(onTarget(p));
  });

  it("counts workers again once it has marked both Redis: one that connected in between stops it, and the marks go", async () => {
    const p = await deploymentOnOwnRedis("migrate-late-worker");
    await stopWorker(p);
    const keys = new StoreKeys(p.prefix);
    target = connectTarget();
    // A worker that passed its start-up check before the marks connects while migrate marks the
    // new Redis, after migrate's first count found none: the hook makes it at that moment (a
    // BullMQ Worker connects when it is made).
    const lateConnection = createRedisClient(sourceUrl(), false, {
      maxRetriesPerRequest: null,
      lazyConnect: true,
    });
    let late: Worker | undefined;
    const connectedMeanwhile = target as unknown as {
      set: (...args: unknown[]) => Promise<unknown>;
    };
    const set = connectedMeanwhile.set.bind(target);
    connectedMeanwhile.set = async (...args: unknown[]) => {
      if (args[0] === keys.arrivingMark()) {
        late = new Worker(PURCHASE_EVENTS_QUEUE, async () => undefined, {
          connection: lateConnection,
          prefix: queuePrefix(p.prefix, PURCHASE_EVENTS_QUEUE, false),
          autorun: false,
        });
        await late.waitUntilReady();
      }
      return set(...args);
    };
    try {
      await expect(migrateToTarget(p)).rejects.toThrow(
        /1 worker connection\(s\) are on this deployment's queues: stop every worker/,
      );
    } finally {
      await late?.close();
      lateConnection.disconnect();
    }
    expect(late).toBeDefined();
    // Both marks taken back: workers may start on the old Redis again, nothing was copied.
    expect(await p.redis.exists(keys.movedMark())).toBe(0);
    expect(await target.exists(keys.arrivingMark())).toBe(0);
    expect(await target.exists(keys.shardCount())).toBe(0);
  });

  it("refuses while an operator command runs on the old Redis (an erasure under way would leave what was copied), and takes its marks back", async () => {
    const p = await deploymentOnOwnRedis("migrate-operator");
    await stopWorker(p);
    const keys = new StoreKeys(p.prefix);
    // An operator command (followups erase, cancel, …) that began before the move: what it
    // changes on the old Redis after its keys were copied would not reach the new one.
    process.env = { ...savedEnv, ...p.commandEnv };
    const command = await operatorCommandAtWork(p.configDir);
    target = connectTarget();
    await expect(migrateToTarget(p)).rejects.toThrow(
      /an operator command \(pid \d+ on .+, started .+\) is running on this deployment: wait for it to finish/,
    );
    // Both marks taken back, nothing copied.
    expect(await p.redis.exists(keys.movedMark())).toBe(0);
    expect(await target.exists(keys.arrivingMark())).toBe(0);
    expect(await target.exists(keys.shardCount())).toBe(0);
    command.finish();
    await command.done;
    expect(await migrateTo(p)).toMatchObject({ shards: SHARDS });
  });

  it("refuses while a worker runs (a dry run runs beside it), and a Redis that holds a deployment already", async () => {
    const p = await deploymentOnOwnRedis("migrate-refused");
    process.env = { ...savedEnv, ...p.envVars };
    await expect(
      runMigrate({ toUrl: targetUrl(), toCluster: targetCluster() }, captureIo()),
    ).rejects.toThrow(/worker connection\(s\) are on this deployment's queues: stop every worker/);
    const dry = captureIo();
    expect(
      await runMigrate({ toUrl: targetUrl(), toCluster: targetCluster(), dryRun: true }, dry),
    ).toBe(0);
    expect(dry.output()).toMatch(/would copy this deployment \(2 shards\)[\s\S]*snapshot/);
    // Refused and dry runs leave nothing on the new Redis (no queue settings either).
    const probe = createRedisClient(targetUrl(), targetCluster(), { maxRetriesPerRequest: null });
    expect(await keysMatching(probe, `*${p.prefix}*`)).toEqual([]);
    probe.disconnect();
    await expect(runMigrate({ toUrl: sourceUrl(), dryRun: true }, captureIo())).rejects.toThrow(
      "--to-url names the Redis the deployment is on",
    );
    // Another database of the same server is another Redis.
    const otherDb = captureIo();
    expect(await runMigrate({ toUrl: `${sourceUrl()}/5`, dryRun: true }, otherDb)).toBe(0);
    expect(otherDb.output()).toContain("would copy this deployment (2 shards)");
    // A URL that is not one is refused without echoing it (it may carry a password).
    const typo = runMigrate(
      { toUrl: "redis://admin:S3cret@127.0.0.1:99999", toCluster: true },
      captureIo(),
    );
    await expect(typo).rejects.toThrow("--to-url: expected the new Redis's URL");
    await expect(typo).rejects.not.toThrow("S3cret");
    // Several URLs are a cluster's nodes: without --to-cluster, a usage error, the URLs not echoed.
    const nodes = runMigrate(
      { toUrl: `redis://:S3cret@127.0.0.1:7000,${sourceUrl()}`, dryRun: true },
      captureIo(),
    );
    await expect(nodes).rejects.toMatchObject({
      code: 2,
      message: "--to-url: several URLs are the nodes of a Redis Cluster: add --to-cluster",
    });
    // A single Redis taken for a cluster: said in the command's own flags.
    await expect(
      runMigrate({ toUrl: `${sourceUrl()}/5`, toCluster: true, dryRun: true }, captureIo()),
    ).rejects.toThrow(
      /^--to-cluster, but the Redis at --to-url is not a Redis Cluster node: leave out --to-cluster/,
    );
    // A new Redis that cannot be reached is named without the password its URL carries.
    const away = runMigrate({ toUrl: "redis://:S3cret@127.0.0.1:1", dryRun: true }, captureIo());
    await expect(away).rejects.toThrow(
      /^cannot reach Redis at redis:\/\/127\.0\.0\.1:1 \(--to-url\): /,
    );
    await expect(away).rejects.not.toThrow("S3cret");
    await stopWorker(p);
    // A replica (of the old Redis, here) takes no writes: refused before anything is marked.
    replica = await startRedisServer();
    const replicaClient = createRedisClient(replica.url, false);
    const { port } = new URL(sourceUrl());
    await replicaClient.replicaof("127.0.0.1", port);
    replicaClient.disconnect();
    await expect(runMigrate({ toUrl: replica.url }, captureIo())).rejects.toThrow(
      /the new Redis does not take a copy of a key \(READONLY/,
    );
    expect(await p.redis.exists(new StoreKeys(p.prefix).movedMark())).toBe(0);
    // The new Redis holds a deployment under the same prefix already.
    target = connectTarget();
    await target.set(new StoreKeys(p.prefix).shardCount(), "2");
    await expect(
      runMigrate({ toUrl: targetUrl(), toCluster: targetCluster() }, captureIo()),
    ).rejects.toThrow(/holds a followups deployment under QUEUE_PREFIX .* already/);
    expect(await p.redis.exists(new StoreKeys(p.prefix).movedMark())).toBe(0);
  });

  it("stops in bounded time, naming the new Redis, when it answers nothing while failed jobs are copied; run again, it finishes", async () => {
    const p = await deploymentOnOwnRedis("migrate-lost-failed");
    // Events that fail validation: failed jobs of the input queue, enough to freeze the new Redis
    // while they are failed again there.
    const FAILED = 300;
    await p.events.addBulk(
      Array.from({ length: FAILED }, (_, n) => ({
        name: "purchase.completed",
        data: { type: "purchase.completed", id: `evt-bad-${n}` } as never,
        opts: { jobId: `evt-bad-${n}` },
      })),
    );
    await eventually(
      async () => ((await p.events.getFailedCount()) === FAILED ? true : undefined),
      "the bad events to fail",
    );
    await stopWorker(p);
    ownTarget = await startRedisServer();
    const newRedis = ownTarget;
    process.env = { ...savedEnv, ...p.envVars };
    target = createRedisClient(newRedis.url, false, { maxRetriesPerRequest: null });
    const eventsThere = new Queue(PURCHASE_EVENTS_QUEUE, {
      connection: target,
      prefix: queuePrefix(p.prefix, PURCHASE_EVENTS_QUEUE, false),
    });
    const answerWithinMs = 1_500;
    const run = runMigrate({ toUrl: newRedis.url, answerWithinMs }, captureIo());
    run.catch(() => undefined);
    await eventually(
      async () => ((await eventsThere.getFailedCount()) >= 5 ? true : undefined),
      "some failed jobs failed again on the new Redis",
    );
    newRedis.freeze();
    const frozenAt = Date.now();
    const error = await run.then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    // Within its bound (and the PING that finds which Redis it was), not when the Redis answers.
    expect(Date.now() - frozenAt).toBeLessThan(answerWithinMs + 2_000 + 3_000);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).code).toBe(EXIT.invalid);
    const message = (error as Error).message;
    expect(message).not.toContain("\n");
    expect(message).toMatch(
      /^followups migrate stopped while copying waiting, delayed and failed jobs: the new Redis \(redis:\/\/127\.0\.0\.1:\d+\) stopped answering \(Command timed out\)\..*run the same command again once it answers/,
    );
    newRedis.thaw();
    // Run again, it finishes: every failed job failed once there. The stopped run's hold on the
    // new Redis (it could not give it back) and a job it had taken to fail there are held for some
    // seconds more: the command says so, and is run again.
    let done: number | undefined;
    for (const started = Date.now(); done === undefined; ) {
      try {
        done = await runMigrate({ toUrl: newRedis.url }, captureIo());
      } catch (thrown) {
        const held = /held by an earlier run|its hold runs out within/.test(String(thrown));
        if (!held || Date.now() - started > 40_000) throw thrown;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    expect(done).toBe(EXIT.ok);
    expect(await eventsThere.getFailedCount()).toBe(FAILED);
    expect(await eventsThere.getActiveCount()).toBe(0);
    await eventsThere.close();
    expect(await target.exists(new StoreKeys(p.prefix).arrivingMark())).toBe(0);
  }, 90_000);

  it("run again, fails a job again that a stopped run had taken to fail, once that run's hold has run out", async () => {
    const p = await deploymentOnOwnRedis("migrate-taken-failed");
    const bad = await failedEvent(p, "evt-taken");
    await stopWorker(p);
    const reason = bad.failedReason;
    expect(reason).toBeTruthy();
    // An earlier run marked both, added the failed job to the new Redis's input queue and took it
    // to fail it there, then stopped (killed): the job is active there, under a lock nothing renews.
    const newRedis = connectTarget();
    await markedAsByStoppedRun(p);
    const eventsPrefix = queuePrefix(p.prefix, PURCHASE_EVENTS_QUEUE, targetCluster());
    const eventsThere = new Queue(PURCHASE_EVENTS_QUEUE, {
      connection: newRedis,
      prefix: eventsPrefix,
    });
    await eventsThere.add("purchase.completed", bad.data, { jobId: "evt-taken", lifo: true });
    const stoppedConnection = createRedisClient(targetUrl(), targetCluster(), {
      maxRetriesPerRequest: null,
    });
    const stoppedRun = new Worker(PURCHASE_EVENTS_QUEUE, null, {
      connection: stoppedConnection,
      prefix: eventsPrefix,
      autorun: false,
      lockDuration: 1_000,
    });
    expect((await stoppedRun.getNextJob("stopped-run", { block: false }))?.id).toBe("evt-taken");
    await stoppedRun.close();
    stoppedConnection.disconnect();
    // While its hold lasts, refused, saying for how long.
    await expect(migrateToTarget(p)).rejects.toThrow(
      /^job evt-taken of purchase-events is held by an earlier run of this command that stopped: .*then run the command again$/,
    );
    // Its hold (the job's lock, renewed by nothing) runs out; the job stays active, held by no one.
    await eventually(
      async () => (await newRedis.pttl(`${eventsThere.toKey("evt-taken")}:lock`)) < 0 || undefined,
      "the stopped run's lock on evt-taken to run out",
    );
    expect(await (await eventsThere.getJob("evt-taken"))?.getState()).toBe("active");
    // Then it finishes: the job failed there with its reason, and workers start there.
    await expect(migrateToTarget(p)).resolves.toMatchObject({ failedJobsCopied: 1 });
    const failed = await eventsThere.getJob("evt-taken");
    expect(await failed?.getState()).toBe("failed");
    expect(failed?.failedReason).toBe(reason);
    await eventsThere.close();
    await workerOn(onTarget(p));
  });

  it("one move to a Redis at a time: a second deployment moving there at once is refused, as is one while a stopped run's hold lasts", async () => {
    const p = await deploymentOnOwnRedis("migrate-two-to-one");
    await p.publisher.publish(newspaper("first", 5) as never);
    await eventProcessed(p, "evt-first");
    await stopWorker(p);
    // Another deployment under the same QUEUE_PREFIX, on another Redis.
    otherSource = await startRedisServer();
    const otherEnv = { ...p.envVars, REDIS_URL: otherSource.url };
    await workerOn(otherEnv);
    await Promise.all(workers.splice(0).map((worker) => worker.close()));
    const keys = new StoreKeys(p.prefix);
    const newRedis = connectTarget();

    // A run stopped (killed -9) while it held the new Redis: refused until its hold runs out.
    const stopped = await takeMoveLease(newRedis, p.prefix, "followups migrate", {
      leaseMs: 1_000,
    });
    stopped.abandon();
    process.env = { ...savedEnv, ...p.envVars };
    await expect(
      runMigrate({ toUrl: targetUrl(), toCluster: targetCluster() }, captureIo()),
    ).rejects.toThrow(
      /^followups migrate is running on the new Redis \(.+\) already \(pid \d+ on .+\): wait for it to finish\. If it was stopped .*its hold runs out within 1 s/,
    );
    expect(await p.redis.exists(keys.movedMark())).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1_100));

    // The other deployment's move starts while this one's is about to mark the new Redis (each
    // found it empty): refused, naming the run; this one finishes.
    let second: Promise<number> | undefined;
    const marking = newRedis as unknown as { set: (...args: unknown[]) => Promise<unknown> };
    const set = marking.set.bind(newRedis);
    marking.set = async (...args: unknown[]) => {
      if (args[0] === keys.arrivingMark() && !second) {
        process.env = { ...savedEnv, ...otherEnv };
        second = runMigrate({ toUrl: targetUrl(), toCluster: targetCluster() }, captureIo());
        await second.catch(() => undefined);
      }
      return set(...args);
    };
    await expect(migrateToTarget(p)).resolves.toMatchObject({ dryRun: false, shards: SHARDS });
    await expect(second).rejects.toThrow(
      /^followups migrate is running on the new Redis \(.+\) already \(pid \d+ on .+\): wait for it to finish/,
    );
    // The other deployment stays where it was; the new Redis holds this one's (its own secret).
    const other = createRedisClient(otherSource.url, false);
    expect(await other.exists(keys.movedMark())).toBe(0);
    const secret = keys.sharedSecret("address-hash");
    expect(await newRedis.get(secret)).toBe(await p.redis.get(secret));
    expect(await newRedis.get(secret)).not.toBe(await other.get(secret));
    other.disconnect();
    await workerOn(onTarget(p));
  });

  it("refuses a new Redis that holds a deployment of an older key layout under the same prefix", async () => {
    const p = await deploymentOnOwnRedis("migrate-older-there");
    await stopWorker(p);
    // A deployment under the same QUEUE_PREFIX on the new Redis, of key layout 5: its global keys
    // beside the input queue, where this version does not look for its shard count.
    await workerOn(onTarget(p));
    await Promise.all(workers.splice(0).map((worker) => worker.close()));
    const newRedis = connectTarget();
    const keys = new StoreKeys(p.prefix);
    await backToFormerGlobalKeys(newRedis, p.prefix, "5");
    expect(await newRedis.exists(keys.shardCount())).toBe(0);
    const theirs = await newRedis.get(`${formerGlobalBase(p.prefix)}secret:address-hash`);
    expect(theirs).toBeTruthy();
    process.env = { ...savedEnv, ...p.envVars };
    await expect(
      runMigrate({ toUrl: targetUrl(), toCluster: targetCluster() }, captureIo()),
    ).rejects.toThrow(
      /^redis:\/\/.+ holds followups data of an older key layout \(versions before 4 December 2026\) under QUEUE_PREFIX ".+": another deployment, which this move would copy over and mix with\. Move to an empty Redis, or delete that deployment's keys there first$/,
    );
    // Neither Redis marked, nothing copied there.
    expect(await p.redis.exists(keys.movedMark())).toBe(0);
    expect(await newRedis.exists(keys.arrivingMark())).toBe(0);
    expect(await newRedis.exists(keys.layoutVersion())).toBe(0);
    expect(await newRedis.get(`${formerGlobalBase(p.prefix)}secret:address-hash`)).toBe(theirs);
  });

  it("a run stopped while it marks the move finished is finished by the next, whichever mark it reached", async () => {
    const p = await deploymentOnOwnRedis("migrate-stopped-finishing");
    await stopWorker(p);
    const keys = new StoreKeys(p.prefix);
    const newRedis = connectTarget();
    // Stopped (Redis lost, say) as it marks the old Redis's move finished.
    const oldRedis = p.redis as unknown as { set: (...args: unknown[]) => Promise<unknown> };
    const set = oldRedis.set.bind(p.redis);
    oldRedis.set = async (...args: unknown[]) => {
      if (args[0] === keys.movedMark() && String(args[1]).includes("finishedAt"))
        throw new Error("Connection is closed.");
      return set(...args);
    };
    await expect(migrateToTarget(p)).rejects.toThrow("Connection is closed.");
    oldRedis.set = set;
    await expect(migrateToTarget(p)).resolves.toMatchObject({ dryRun: false, shards: SHARDS });
    expect(await newRedis.exists(keys.arrivingMark())).toBe(0);
    expect(JSON.parse((await p.redis.get(keys.movedMark())) ?? "{}")).toHaveProperty("finishedAt");

    // Stopped as it takes the new Redis's mark away, the old one's saying finished already (a run
    // that had marked both begun again, as an operator's would).
    await markedAsByStoppedRun(p);
    const marks = newRedis as unknown as { del: (...args: unknown[]) => Promise<unknown> };
    const del = marks.del.bind(newRedis);
    marks.del = async (...args: unknown[]) => {
      if (args[0] === keys.arrivingMark()) throw new Error("Connection is closed.");
      return del(...args);
    };
    await expect(migrateToTarget(p)).rejects.toThrow("Connection is closed.");
    marks.del = del;
    expect(await newRedis.exists(keys.arrivingMark())).toBe(1);
    await expect(workerOn(onTarget(p))).rejects.toThrow(/still being copied here/);
    await expect(migrateToTarget(p)).resolves.toMatchObject({ lateEvents: 0 });
    expect(await newRedis.exists(keys.arrivingMark())).toBe(0);
    await workerOn(onTarget(p));
  });
});
