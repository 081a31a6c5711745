import { DateTime } from "luxon";
import { afterEach, expect, it } from "vitest";
import type { RuleSet } from "../../src/domain/rules.js";
import { graceEnd } from "../../src/domain/send-guard.js";
import { createLogger } from "../../src/logger.js";
import { FollowUpMetrics } from "../../src/metrics.js";
import { leaveFailedJobToJobWatch } from "../../src/queue/bullmq-failures.js";
import { watchStepsOfEarlierVersions } from "../../src/queue/job-watch-upgrade.js";
import { createLostJobs, JOB_LOST } from "../../src/queue/lost-jobs.js";
import { followUpJobId } from "../../src/queue/names.js";
import { createPromoter } from "../../src/queue/promoter.js";
import { DeliveryLedger, sumHours } from "../../src/store/delivery-ledger.js";
import { customerShard, StoreKeys, shardScope } from "../../src/store/keys.js";
import { purchase, purchaseInput, shippedRules } from "../support/fixtures.js";
import {
  capThankYouEmails,
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
  stepRecordOf,
  waitForState,
} from "../support/pipeline-harness.js";
import { settledSteps } from "../support/settled-queue.js";

/**
 * A step whose BullMQ job is gone (removed with queue tools, lost in a failover) while its record
 * still says scheduled or sending: the job watch finds it, with a clock of the test's own, and
 * queues it again within its grace period, or skips it as `job-lost` after it; a live send is
 * never touched. The pipeline's worker (on the real clock) sends what is queued again.
 */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const THANK_YOU = "thank-you.thank-you";
const MINUTE = 60_000;
const MARGIN = 15 * MINUTE;
const logger = createLogger({ level: "silent", pretty: false });

/**
 * A purchase whose thank-you (due in an hour) was promoted and then lost its job: the test's
 * promoter makes it a job a minute before it is due, and the job is removed at once.
 */
async function promotedAndLost(p: PipelineHarness, n: number, options: { keepJob?: boolean } = {}) {
  const id = `evt-lost-${n}`;
  const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
  await p.publisher.publish(
    purchaseInput({
      id,
      orderId: `ord-lost-${n}`,
      occurredAt,
      customer: { id: `cus-lost-${n}`, email: `lost-${n}@example.com` },
    }) as never,
  );
  expect(await eventProcessed(p, id)).toBe("completed");
  const record = await stepRecordOf(p, id, THANK_YOU);
  expect(record?.state).toBe("scheduled");
  const due = record?.dueAt ?? 0;
  const shard = await p.shardOf(id);
  const stores = p.stores.of(shard);
  const queue = p.followUpQueues[shard];
  if (!queue) throw new Error(`no queue for shard ${shard}`);
  const promoter = createPromoter({
    schedule: stores.schedule,
    followUps: queue,
    horizonMs: 5 * MINUTE,
    now: () => due - MINUTE,
    logger,
    jobWatch: stores.jobWatch,
  });
  expect(await promoter.promoteDue()).toBe(1);
  const jobId = followUpJobId(id, THANK_YOU);
  if (!options.keepJob) {
    expect(await queue.remove(jobId)).toBe(1);
    expect(await queue.getJob(jobId)).toBeUndefined();
  }
  const metrics = new FollowUpMetrics();
  const rules = await rulesOf();
  const looker = (counted: FollowUpMetrics) => lookerOf(p, shard, rules, counted);
  const lookAt = looker(metrics);
  return { id, due, queue, jobId, stores, metrics, lookAt, looker };
}

/** A worker's look for lost jobs in a shard, with a clock of the test's own: a round at `at`. */
function lookerOf(
  p: PipelineHarness,
  shard: number,
  rules: () => RuleSet,
  metrics: FollowUpMetrics,
) {
  const stores = p.stores.of(shard);
  const queue = p.followUpQueues[shard];
  if (!queue) throw new Error(`no queue for shard ${shard}`);
  let clock = 0;
  const lostJobs = createLostJobs({
    shard,
    store: stores.store,
    watch: stores.jobWatch,
    followUps: queue,
    redis: p.redis,
    caps: stores.caps,
    rules,
    metrics,
    logger,
    now: () => clock,
    marginMs: MARGIN,
  });
  return (at: number) => {
    clock = at;
    return lostJobs.lookRound();
  };
}

/** A pipeline of its own (`name`) with a promoted step whose job was lost (promotedAndLost). */
async function pipelineWithLostJob(name: string, n: number) {
  pipeline = await startPipeline(name);
  return { p: pipeline, lost: await promotedAndLost(pipeline, n) };
}

async function rulesOf() {
  const rules = await shippedRules();
  return () => rules;
}

async function lostCount(metrics: FollowUpMetrics, outcome: string) {
  const { values } = await metrics.lostJobs.get();
  return values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

it("queues a promoted step whose job was removed again, and it is sent exactly once", {
  timeout: 30_000,
}, async () => {
  const { p, lost } = await pipelineWithLostJob("lost-jobs-requeue", 1);
  // Not before its bucket's time and the margin have passed.
  expect(await lost.lookAt(lost.due + 5 * MINUTE)).toEqual({ requeued: 0, skipped: 0 });
  expect(await lost.queue.getJob(lost.jobId)).toBeUndefined();
  // Then, within its two days' grace period: queued again, and the worker sends it.
  expect(await lost.lookAt(lost.due + 40 * MINUTE)).toEqual({ requeued: 1, skipped: 0 });
  expect(await lostCount(lost.metrics, "requeued")).toBe(1);
  const sent = await eventually(async () => {
    const record = await stepRecordOf(p, lost.id, THANK_YOU);
    return record?.state === "sent" ? record : undefined;
  }, "the thank-you to be sent");
  expect(sent.takeovers).toBe(0);
  await p.sink.waitForMessages(1, 10_000);
  // Looked at again later: sent, so left alone, and never sent twice.
  expect(await lost.lookAt(lost.due + 3 * 60 * MINUTE)).toEqual({ requeued: 0, skipped: 0 });
  // Every job of the step has finished, retries included: none is left to send it again.
  await settledSteps(p.followUpQueues, [{ eventId: lost.id, stepId: THANK_YOU }], "the thank-you");
  const to = p.sink.messages.filter((m) => m.envelope.rcptTo[0] === "lost-1@example.com");
  expect(to).toHaveLength(1);
  expect(await lostCount(lost.metrics, "requeued")).toBe(1);
});

it("queues again a step whose job BullMQ failed for a Redis error, instead of failing it for good", {
  timeout: 30_000,
}, async () => {
  const { p, lost } = await pipelineWithLostJob("lost-jobs-failed", 9);
  // What the worker's "failed" handler is given when the delivery processor could not put its job
  // back for a retry (Redis refused the move): the job is finished, the step still pending.
  leaveFailedJobToJobWatch(logger)(
    { id: lost.jobId, data: { e: lost.id, s: THANK_YOU } },
    new Error("Connection is closed."),
  );
  expect((await stepRecordOf(p, lost.id, THANK_YOU))?.state).toBe("scheduled");
  expect(await lost.lookAt(lost.due + 40 * MINUTE)).toEqual({ requeued: 1, skipped: 0 });
  await eventually(async () => {
    const record = await stepRecordOf(p, lost.id, THANK_YOU);
    return record?.state === "sent" ? record : undefined;
  }, "the thank-you to be sent");
  await settledSteps(p.followUpQueues, [{ eventId: lost.id, stepId: THANK_YOU }], "the thank-you");
  expect(p.sink.messages.filter((m) => m.envelope.rcptTo[0] === "lost-9@example.com")).toHaveLength(
    1,
  );
});

it("fails a step whose job BullMQ failed for stalling too often, as the README's guarantees say", {
  timeout: 30_000,
}, async () => {
  pipeline = await startPipeline("lost-jobs-stalled");
  const p = pipeline;
  const lost = await promotedAndLost(p, 10, { keepJob: true });
  // What BullMQ's stalled check writes on a job that stalled more than maxStalledCount times (a
  // job that kills or blocks every worker running it): the next worker to take it fails it
  // (with an UnrecoverableError) before the processor runs.
  await p.redis.hset(lost.queue.toKey(lost.jobId), "defa", "job stalled more than allowable limit");
  const job = await lost.queue.getJob(lost.jobId);
  await job?.promote();
  await eventually(
    async () => ((await lost.queue.getJobState(lost.jobId)) === "failed" ? true : undefined),
    "BullMQ to fail the job",
  );
  const failed = await eventually(async () => {
    const record = await stepRecordOf(p, lost.id, THANK_YOU);
    return record?.state === "failed" ? record : undefined;
  }, "the thank-you to be recorded failed");
  expect(failed.reason?.code).toBe("stalled");
  // Failed for good: the job watch leaves it, so the job is not run again by the next worker.
  expect(await lost.lookAt(lost.due + 40 * MINUTE)).toEqual({ requeued: 0, skipped: 0 });
  expect(p.sink.messages.filter((m) => m.envelope.rcptTo[0] === "lost-10@example.com")).toEqual([]);
});

it("skips a step whose job was lost past its grace period, with the reason, and counts it", {
  timeout: 30_000,
}, async () => {
  const { p, lost } = await pipelineWithLostJob("lost-jobs-skip", 2);
  // A thank-you's grace period is two days.
  expect(await lost.lookAt(lost.due + 3 * 24 * 60 * MINUTE)).toEqual({ requeued: 0, skipped: 1 });
  const record = await stepRecordOf(p, lost.id, THANK_YOU);
  expect(record?.state).toBe("skipped");
  expect(record?.reason?.code).toBe(JOB_LOST);
  expect(record?.reason?.text).toMatch(/job was lost/);
  expect(await lostCount(lost.metrics, "skipped")).toBe(1);
  const { values } = await lost.metrics.skipped.get();
  expect(values.find((v) => v.labels.reason === JOB_LOST)?.value).toBe(1);
  expect(await lost.queue.getJob(lost.jobId)).toBeUndefined();
  expect(p.sink.messages.filter((m) => m.envelope.rcptTo[0] === "lost-2@example.com")).toEqual([]);
});

it("leaves a step being sent alone while its sender may be live, however its job fares", {
  timeout: 30_000,
}, async () => {
  const { p, lost } = await pipelineWithLostJob("lost-jobs-sending", 3);
  // A worker claims it (an hour late, say) and is sending: its job is gone meanwhile.
  const claimedAt = lost.due + 60 * MINUTE;
  const claim = await lost.stores.store.claim(lost.id, THANK_YOU, claimedAt, 2 * MINUTE, {
    dueAt: lost.due,
  });
  expect(claim.claimed).toBe(true);
  // Within its lease, and within the margin after it: untouched, no job added.
  for (const at of [claimedAt + MINUTE, claimedAt + 5 * MINUTE, claimedAt + MARGIN - MINUTE]) {
    expect(await lost.lookAt(at)).toEqual({ requeued: 0, skipped: 0 });
    expect((await stepRecordOf(p, lost.id, THANK_YOU))?.state).toBe("sending");
    expect(await lost.queue.getJob(lost.jobId)).toBeUndefined();
  }
  expect(await lostCount(lost.metrics, "requeued")).toBe(0);
  // Long past its lease and the margin, still within the grace period: its sender is gone, and it
  // gets a job again (its run takes the send over, counted as a possible duplicate).
  expect(await lost.lookAt(claimedAt + MARGIN + 20 * MINUTE)).toEqual({
    requeued: 1,
    skipped: 0,
  });
  expect(await lost.queue.getJob(lost.jobId)).toBeDefined();
});

/**
 * A promoted step whose job was lost, filed again in a later bucket (a resend, a retry, an event
 * published again), looked at by two workers in the same round at `at`, each taking one of the
 * two buckets: what each round found, and the two workers' counts of `outcome` added up.
 */
async function lookedAtTwiceAtOnce(
  p: PipelineHarness,
  n: number,
  after: number,
  /** When the other worker looks, if not at the same time: from the step's grace end (ms). */
  otherAfterGraceEnd?: number,
) {
  const lost = await promotedAndLost(p, n);
  await lost.stores.jobWatch.watch([
    { eventId: lost.id, stepId: THANK_YOU, lookAt: lost.due + 25 * MINUTE },
  ]);
  const otherMetrics = new FollowUpMetrics();
  const other = lost.looker(otherMetrics);
  const at = lost.due + after;
  const { event } = await lost.stores.store.sendView(lost.id, THANK_YOU);
  if (!event) throw new Error(`no purchase ${lost.id}`);
  const ends = graceEnd({ event, dueAt: lost.due }, "thank-you", (await rulesOf())()).toMillis();
  const otherAt = otherAfterGraceEnd === undefined ? at : ends + otherAfterGraceEnd;
  const [mine, theirs] = await Promise.all([lost.lookAt(at), other(otherAt)]);
  const counted = async (outcome: string) =>
    (await lostCount(lost.metrics, outcome)) + (await lostCount(otherMetrics, outcome));
  return { lost, at, rounds: [mine, theirs], counted };
}

it("queues and counts a step filed twice in the watch once, when two workers look at once", {
  timeout: 30_000,
}, async () => {
  pipeline = await startPipeline("lost-jobs-twice");
  const p = pipeline;
  const { lost, rounds, counted } = await lookedAtTwiceAtOnce(p, 4, 50 * MINUTE);
  expect(rounds.map((round) => round.requeued).sort()).toEqual([0, 1]);
  expect(await counted("requeued")).toBe(1);
  await eventually(async () => {
    const record = await stepRecordOf(p, lost.id, THANK_YOU);
    return record?.state === "sent" ? record : undefined;
  }, "the thank-you to be sent");
  await p.sink.waitForMessages(1, 10_000);
  // Every job of the step has finished, retries included: none is left to send it again.
  await settledSteps(p.followUpQueues, [{ eventId: lost.id, stepId: THANK_YOU }], "the thank-you");
  expect(p.sink.messages.filter((m) => m.envelope.rcptTo[0] === "lost-4@example.com")).toHaveLength(
    1,
  );
});

it("skips and counts a step filed twice in the watch once, when two workers look past its grace", {
  timeout: 30_000,
}, async () => {
  pipeline = await startPipeline("lost-jobs-twice-skip");
  const { at, rounds, counted } = await lookedAtTwiceAtOnce(pipeline, 5, 3 * 24 * 60 * MINUTE);
  expect(rounds.map((round) => round.skipped).sort()).toEqual([0, 1]);
  expect(await counted("skipped")).toBe(1);
  // One skip in the ledger, in the hour it was made.
  const counts = sumHours(
    // Every shard's ledger (the deployment's shard count), as reports read them.
    await new DeliveryLedger(pipeline.redis, shardScope(pipeline.prefix, 0, pipeline.shards)).hours(
      at - 3_600_000,
      at + 3_600_000,
    ),
  );
  const skips = [...counts].filter(([field]) => field.includes(JOB_LOST));
  expect(skips.map(([, n]) => n)).toEqual([1]);
});

it("acts once on a step filed twice in the watch, when two workers look at once either side of its grace end", {
  timeout: 30_000,
}, async () => {
  pipeline = await startPipeline("lost-jobs-twice-grace-end");
  // A thank-you's grace period is two days: one worker looks in its last second (and would queue
  // it again), the other a second after it (and would skip it as job-lost).
  const { rounds, counted } = await lookedAtTwiceAtOnce(
    pipeline,
    14,
    2 * 24 * 60 * MINUTE - 1_000,
    1_000,
  );
  const acted = rounds.map((round) => round.requeued + round.skipped);
  expect(acted.sort()).toEqual([0, 1]);
  expect((await counted("requeued")) + (await counted("skipped"))).toBe(1);
});

it("counts a lost step's grace period in the customer's zone, as the send guard does, across DST", {
  timeout: 30_000,
}, async () => {
  pipeline = await startPipeline("lost-jobs-dst");
  const p = pipeline;
  const rules = await shippedRules();
  const metrics = new FollowUpMetrics();
  /**
   * A thank-you (two days' grace) of a London customer due at `dueIso`, whose job was lost
   * (none was ever added), looked at once at `atIso`: what the look did with it.
   */
  async function lostAcrossDst(n: number, dueIso: string, atIso: string) {
    const event = purchase({
      id: `evt-dst-${n}`,
      orderId: `ord-dst-${n}`,
      occurredAt: dueIso,
      customer: { id: `cus-dst-${n}`, email: `dst-${n}@example.com`, timezone: "Europe/London" },
    });
    const shard = customerShard(event.customer.id, p.shards);
    const stores = p.stores.of(shard);
    const due = Date.parse(dueIso);
    await stores.store.schedule(
      event,
      Date.now() + 30 * 24 * 60 * MINUTE,
      [
        {
          stepId: THANK_YOU,
          dueAt: due,
          channel: "email",
          kind: "thank-you",
          ruleId: "thank-you",
          inSchedule: false,
        },
      ],
      due,
      1,
    );
    await stores.jobWatch.watch([{ eventId: event.id, stepId: THANK_YOU, lookAt: due + MINUTE }]);
    return lookerOf(p, shard, () => rules, metrics)(Date.parse(atIso));
  }
  // (Dates to come: the watch keeps its lists a week past their time.) Clocks go back on 31
  // October 2027 in London: two calendar days after 13:00 BST on the 30th is 13:00 GMT on
  // 1 November, 49 hours on. Half an hour before that, the guard would still send it: it is
  // queued again, not skipped (48 hours in UTC had passed).
  expect(await lostAcrossDst(1, "2027-10-30T12:00:00Z", "2027-11-01T12:30:00Z")).toEqual({
    requeued: 1,
    skipped: 0,
  });
  // Clocks go forward on 28 March 2027: two days after 12:00 GMT on the 27th is 12:00 BST on the
  // 29th, 47 hours on. Half an hour after that, the guard would skip it as past due: it is
  // skipped as job-lost, not queued to be refused.
  expect(await lostAcrossDst(2, "2027-03-27T12:00:00Z", "2027-03-29T11:30:00Z")).toEqual({
    requeued: 0,
    skipped: 1,
  });
});

/**
 * As a version before the watch left a promoted step whose job was lost (promotedAndLost):
 * nothing in the shard's watch, its records not read; and what the upgrade pass is given.
 */
async function asBeforeTheWatch(
  p: PipelineHarness,
  lost: Awaited<ReturnType<typeof promotedAndLost>>,
) {
  const shard = await p.shardOf(lost.id);
  const keys = new StoreKeys(shardScope(p.prefix, shard, p.shards));
  const buckets = await p.redis.zrange(keys.jobWatchIndex(), "0", "-1");
  await p.redis.del(keys.jobWatchIndex(), ...buckets.map((b) => keys.jobWatchBucket(Number(b))));
  await p.redis.del(keys.jobWatchUpgrade());
  const upgrade = {
    shard,
    watch: lost.stores.jobWatch,
    horizonMs: 5 * MINUTE,
    now: () => lost.due - MINUTE,
    logger,
  };
  return { keys, upgrade };
}

it("files the steps that became jobs before the job watch once, and a lost one is then found", {
  timeout: 30_000,
}, async () => {
  const { p, lost } = await pipelineWithLostJob("lost-jobs-upgrade", 6);
  const { keys, upgrade } = await asBeforeTheWatch(p, lost);
  expect(await lost.lookAt(lost.due + 40 * MINUTE)).toEqual({ requeued: 0, skipped: 0 });
  // The shard's records are read once: its thank-you (due within the horizon) is filed.
  expect(await watchStepsOfEarlierVersions(upgrade)).toBe(1);
  expect(await watchStepsOfEarlierVersions(upgrade)).toBe(0);
  expect(await p.redis.get(keys.jobWatchUpgrade())).toBe("done");
  expect(await lost.lookAt(lost.due + 40 * MINUTE)).toEqual({ requeued: 1, skipped: 0 });
  expect(await lost.queue.getJob(lost.jobId)).toBeDefined();
});

it("gives the upgrade's lease back when stopped half-way, so the next start reads the shard", {
  timeout: 30_000,
}, async () => {
  const { p, lost } = await pipelineWithLostJob("lost-jobs-upgrade-stopped", 11);
  const { keys, upgrade } = await asBeforeTheWatch(p, lost);
  // A worker shut down as it began reading (a deploy restarting it): nothing filed.
  expect(await watchStepsOfEarlierVersions({ ...upgrade, stopped: () => true })).toBe(0);
  // Its restart, a moment later, reads the shard: not left for a start ten minutes on (which,
  // in a fleet that keeps running, may never come).
  expect(await watchStepsOfEarlierVersions(upgrade)).toBe(1);
  expect(await p.redis.get(keys.jobWatchUpgrade())).toBe("done");
  expect(await lost.lookAt(lost.due + 40 * MINUTE)).toEqual({ requeued: 1, skipped: 0 });
});

it("passes over a step record it cannot read when filing the steps of earlier versions", {
  timeout: 30_000,
}, async () => {
  const { p, lost } = await pipelineWithLostJob("lost-jobs-upgrade-unreadable", 12);
  const { keys, upgrade } = await asBeforeTheWatch(p, lost);
  // Another record of the shard with a step this version cannot read (damaged, or written in a
  // form of a newer version): one such record must not keep every other step unwatched.
  await p.redis.hset(keys.eventRecord("evt-unreadable"), "s:thank-you.thank-you", "?");
  expect(await watchStepsOfEarlierVersions(upgrade)).toBe(1);
  expect(await p.redis.get(keys.jobWatchUpgrade())).toBe("done");
  expect(await lost.lookAt(lost.due + 40 * MINUTE)).toEqual({ requeued: 1, skipped: 0 });
});

it("looks at the other steps of a bucket that holds a step record it cannot read", {
  timeout: 30_000,
}, async () => {
  const { p, lost } = await pipelineWithLostJob("lost-jobs-unreadable", 13);
  // A step of the same shard, watched in the same bucket, whose record this version cannot read
  // (damaged, or in a newer version's form): it must not stop the watch of the whole shard.
  const keys = new StoreKeys(shardScope(p.prefix, await p.shardOf(lost.id), p.shards));
  const unreadable = { eventId: "evt-unreadable", stepId: THANK_YOU };
  await p.redis.hset(keys.eventRecord(unreadable.eventId), `s:${THANK_YOU}`, "?");
  await lost.stores.jobWatch.watch([{ ...unreadable, lookAt: lost.due + 15 * MINUTE }]);
  expect(await lost.lookAt(lost.due + 40 * MINUTE)).toEqual({ requeued: 1, skipped: 0 });
  expect(await lost.queue.getJob(lost.jobId)).toBeDefined();
});

/**
 * A thank-you sent, then resent by an operator whose resend's job was lost before it ran (never
 * added, here): the step is scheduled again and watched, as `followups resend` leaves it.
 */
async function sentAndResendLost(name: string, options: { capped?: boolean } = {}) {
  pipeline = await startPipeline(name, { startWorker: !options.capped });
  const p = pipeline;
  if (options.capped) {
    await capThankYouEmails(p);
    await p.startWorker();
  }
  const id = `evt-${name}`;
  await p.publisher.publish(
    purchaseInput({
      id,
      orderId: `ord-${name}`,
      occurredAt: DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
      customer: { id: `cus-${name}`, email: `${name}@example.com` },
    }) as never,
  );
  expect(await eventProcessed(p, id)).toBe("completed");
  await promoteStep(p, id, THANK_YOU);
  const first = await waitForState(p, id, THANK_YOU, "sent");
  const shard = await p.shardOf(id);
  const stores = p.stores.of(shard);
  const queue = p.followUpQueues[shard];
  if (!queue) throw new Error(`no queue for shard ${shard}`);
  const cap = new StoreKeys(shardScope(p.prefix, shard, p.shards)).capWindow(
    "email",
    `cus-${name}`,
  );
  const base = followUpJobId(id, THANK_YOU);
  if (options.capped)
    await eventually(async () => (await p.redis.zscore(cap, base)) ?? undefined, "the first slot");
  const now = Date.now();
  const requeued = await stores.store.requeue(id, THANK_YOU, "resend", now, {
    outcome: "resent",
    channel: "email",
    kind: "thank-you",
    ruleId: "thank-you",
  });
  expect(requeued.requeued).toBe(true);
  await stores.jobWatch.watch([{ eventId: id, stepId: THANK_YOU, lookAt: now + MINUTE }]);
  return { p, id, shard, queue, first, now, cap, base };
}

it("queues a lost resend's job under the resend's own id, whose send takes its own cap slot and charge", {
  timeout: 30_000,
}, async () => {
  const { p, id, shard, queue, first, now } = await sentAndResendLost("lost-resend");
  const look = lookerOf(p, shard, await rulesOf(), new FollowUpMetrics());
  expect(await look(now + 40 * MINUTE)).toEqual({ requeued: 1, skipped: 0 });
  // Queued as the resend's job (`-r1`), as the resend queued it: its send's frequency-cap slot and
  // SMS charge are filed by this id, apart from the first send's (the step's own id, already
  // charged once: a charge is taken once per id).
  const base = followUpJobId(id, THANK_YOU);
  expect(await queue.getJob(`${base}-r1`)).toBeDefined();
  const resent = await eventually(async () => {
    const record = await stepRecordOf(p, id, THANK_YOU);
    return record?.state === "sent" && record.resends === 1 ? record : undefined;
  }, "the resend to be sent");
  expect(resent.providerId).not.toBe(first.providerId);
  await p.sink.waitForMessages(2, 10_000);
  await settledSteps(p.followUpQueues, [{ eventId: id, stepId: THANK_YOU }], "the resend");
  expect(
    p.sink.messages.filter((m) => m.envelope.rcptTo[0] === "lost-resend@example.com"),
  ).toHaveLength(2);
});

it("skips a lost resend past its grace period keeping the first send's frequency-cap slot", {
  timeout: 30_000,
}, async () => {
  const { p, shard, now, cap, base } = await sentAndResendLost("lost-resend-past", {
    capped: true,
  });
  const look = lookerOf(p, shard, await rulesOf(), new FollowUpMetrics());
  expect(await look(now + 3 * 24 * 60 * MINUTE)).toEqual({ requeued: 0, skipped: 1 });
  // The customer got the first send: its slot still counts against their cap.
  expect(await p.redis.zscore(cap, base)).not.toBeNull();
});
