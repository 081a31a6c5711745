import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { loadRules } from "../../src/config/load-rules.js";
import { addressHash } from "../../src/domain/address-hash.js";
import { createLogger } from "../../src/logger.js";
import { followUpJobId } from "../../src/queue/names.js";
import { createReplanner } from "../../src/queue/replanner.js";
import { moveDelayedJobsToSchedule } from "../../src/queue/schedule-upgrade.js";
import { CustomerHistoryStore } from "../../src/store/customer-history.js";
import { CustomerIndex } from "../../src/store/customer-index.js";
import { FollowUpSchedule } from "../../src/store/follow-up-schedule.js";
import { bucketOf, dayOf, StoreKeys } from "../../src/store/keys.js";
import { legacyFollowUpJobId } from "../../src/store/legacy-layout.js";
import { OrderStore } from "../../src/store/order-store.js";
import { encodePurchase } from "../../src/store/purchase-codec.js";
import { sharedSecret } from "../../src/store/shared-secrets.js";
import { ThankYouGroups } from "../../src/store/thank-you-groups.js";
import { item, purchase, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
  stepRecordOf,
  whereWaiting,
} from "../support/pipeline-harness.js";
import { settledSteps } from "../support/settled-queue.js";

const DAY = 86_400_000;
const CHECK_IN = "big-ticket.check-in";
let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

/**
 * Writes a TV purchase exactly as the version before the compact schedule (45ac22c) left it: the
 * event record without a rules generation, the compressed purchase, the due day's pending count
 * by channel alone, and the check-in as a delayed BullMQ job (under the current job id, or under
 * the 23-character id of the versions before that).
 */
async function writeEarlierVersion(
  p: PipelineHarness,
  id: string,
  dueAt: number,
  jobId: "current" | "legacy",
  occurredAt = Date.now() - DAY,
): Promise<void> {
  const now = Date.now();
  const event = purchase({
    id,
    orderId: `ord-${id}`,
    occurredAt: new Date(occurredAt).toISOString(),
    items: [item("televisions", "899.00", { name: "OLED TV" })],
  });
  const keys = new StoreKeys(p.prefix);
  await p.redis.hset(keys.eventRecord(id), {
    h: "0",
    f: "fingerprint",
    m: JSON.stringify({ o: event.orderId, n: event.customer.name }),
    [`s:${CHECK_IN}`]: JSON.stringify({ s: "scheduled", d: dueAt, c: "sms", k: "check-in" }),
  });
  await p.redis.pexpireat(keys.eventRecord(id), dueAt + 90 * DAY);
  await p.redis.set(keys.purchase(id), encodePurchase(event), "PXAT", dueAt + 90 * DAY);
  await p.redis.hincrby(keys.pendingDay(dayOf(dueAt)), "sms", 1);
  await p.redis.pexpireat(keys.pendingDay(dayOf(dueAt)), (dayOf(dueAt) + 2) * DAY);
  await p.followUps.add(
    "sms",
    { e: id, s: CHECK_IN },
    {
      jobId: jobId === "current" ? followUpJobId(id, CHECK_IN) : legacyFollowUpJobId(id, CHECK_IN),
      delay: dueAt - now,
    },
  );
}

describe("upgrading from one delayed job per step", () => {
  it("moves far-future jobs into the schedule at start-up, keeps near ones, and sends each once", async () => {
    pipeline = await startPipeline("upgrade", { startWorker: false });
    const p = pipeline;
    const now = Date.now();
    const far = now + 80 * DAY;
    await writeEarlierVersion(p, "evt-old-1", far, "current");
    await writeEarlierVersion(p, "evt-old-2", far + 60_000, "legacy");
    // Due within the promotion horizon: BullMQ keeps running it as it is.
    await writeEarlierVersion(p, "evt-old-near", now + 120_000, "current");
    expect(await p.followUps.getDelayedCount()).toBe(3);

    await p.startWorker();
    await eventually(
      async () => ((await p.followUps.getDelayedCount()) === 1 ? true : undefined),
      "the far-future jobs to leave the delayed set",
    );
    expect(await whereWaiting(p, "evt-old-1", CHECK_IN)).toBe("schedule");
    expect(await whereWaiting(p, "evt-old-2", CHECK_IN)).toBe("schedule");
    expect(await p.followUps.getJob(legacyFollowUpJobId("evt-old-2", CHECK_IN))).toBeUndefined();
    expect(await whereWaiting(p, "evt-old-near", CHECK_IN)).toBe("job");

    // Run again (a second worker starting, say): nothing left to move.
    const again = await moveDelayedJobsToSchedule({
      followUps: p.followUps,
      schedule: new FollowUpSchedule(p.redis, p.prefix),
      store: p.store,
      horizonMs: p.env.PROMOTE_HORIZON_MS,
      recordRetentionMs: 90 * DAY,
      now: Date.now,
      logger: createLogger({ level: "silent", pretty: false }),
    });
    expect(again).toBe(0);

    // When due, each is sent once, and the earlier version's pending count goes down with it.
    await promoteStep(p, "evt-old-1", CHECK_IN);
    await promoteStep(p, "evt-old-2", CHECK_IN);
    const messages = await p.twilio.waitForMessages(2);
    expect(messages.map((m) => m.body).every((body) => /Ana/.test(body))).toBe(true);
    for (const id of ["evt-old-1", "evt-old-2"]) {
      await eventually(async () => {
        const record = (await p.store.stepRecords(id, [CHECK_IN])).get(CHECK_IN);
        return record?.state === "sent" ? true : undefined;
      }, `${id} to be recorded as sent`);
    }
    const keys = new StoreKeys(p.prefix);
    for (const due of [far, far + 60_000])
      expect(await p.redis.hget(keys.pendingDay(dayOf(due)), "sms")).toBe("0");
    // Every job of the two check-ins has finished, retries included: none is left to send again.
    await settledSteps(
      p.followUpQueues,
      ["evt-old-1", "evt-old-2"].map((eventId) => ({ eventId, stepId: CHECK_IN })),
      "the two check-ins",
    );
    expect(p.twilio.messages).toHaveLength(2);
  });

  it("re-plans a moved purchase under the upgraded worker's rules though the walk had passed", async () => {
    pipeline = await startPipeline("upgrade-replan", { startWorker: false });
    const p = pipeline;
    const now = Date.now();
    // Bought ten days ago; the earlier version planned its check-in three months on.
    const boughtAt = now - 10 * DAY;
    await writeEarlierVersion(p, "evt-old-replan", boughtAt + 91 * DAY, "current", boughtAt);
    // The upgrade is deployed with rules that check in after a month instead.
    const file = path.join(p.configDir, "rules.yaml");
    const doc = parseDocument(await readFile(file, "utf8"));
    const index = (doc.toJS().rules as { id: string }[]).findIndex((r) => r.id === "big-ticket");
    doc.setIn(["rules", index, "steps", 1, "delay"], "P1M");
    await writeFile(file, doc.toString());
    const loaded = await loadRules(p.configDir);
    if (!loaded.ok) throw new Error("the edited rules should be valid");
    const schedule = new FollowUpSchedule(p.redis, p.prefix);
    const logger = createLogger({ level: "silent", pretty: false });
    const replanner = createReplanner({
      store: p.store,
      schedule,
      history: new CustomerHistoryStore(p.redis, p.prefix),
      thankYous: new ThankYouGroups(p.redis, p.prefix),
      orders: new OrderStore(p.redis, p.prefix),
      customers: new CustomerIndex(p.redis, p.prefix),
      logger,
      clock: () => DateTime.utc(),
      horizonMs: p.env.PROMOTE_HORIZON_MS,
      recordRetentionMs: 90 * DAY,
    });
    // As a starting worker does: its re-planning walk begins and, the schedule being still empty,
    // ends at once; the move of the delayed jobs runs beside it and files the step afterwards.
    await schedule.beginWalk(1);
    expect((await replanner.replanAll(loaded.rules, 1)).purchases).toBe(0);
    const moved = await moveDelayedJobsToSchedule({
      followUps: p.followUps,
      schedule,
      store: p.store,
      horizonMs: p.env.PROMOTE_HORIZON_MS,
      recordRetentionMs: 90 * DAY,
      now: Date.now,
      logger,
    });
    expect(moved).toBe(1);
    // The workers on these rules re-plan what was filed under older ones after the walk began.
    await replanner.replanLater(loaded.rules, 1);
    const record = (await p.store.stepRecords("evt-old-replan", [CHECK_IN])).get(CHECK_IN);
    // Due a month after the purchase (within a few days: the send window), not two months later,
    // when its promotion would re-plan it and skip it as long past due.
    expect(record?.state).toBe("scheduled");
    expect(record?.dueAt).toBeLessThan(boughtAt + 35 * DAY);
    expect(record?.dueAt).toBeGreaterThan(boughtAt + 27 * DAY);
    expect(await whereWaiting(p, "evt-old-replan", CHECK_IN)).toBe("schedule");
  });
});

describe("upgrading from a key per address in the address index", () => {
  it("moves every address's index into its bucket at start-up, once, and still finds its customers", async () => {
    pipeline = await startPipeline("upgrade-who", { startWorker: false });
    const p = pipeline;
    const keys = new StoreKeys(p.prefix);
    const secret = await sharedSecret(p.redis, p.prefix, "address-hash");
    const legacy = (address: string) =>
      keys.legacyAddressIndex(`h:${addressHash(secret, address)}`);
    // As versions of key layout 3 and before left them: a hash per address, customer id → purchase time.
    await p.redis.hset(legacy("ana@example.com"), "cus-ana", String(Date.now() - DAY));
    await p.redis.hset(
      legacy("+14155550123"),
      "cus-ana",
      String(Date.now() - 2 * DAY),
      "guest-9",
      String(Date.now() - 3 * DAY),
    );
    for (const address of ["ana@example.com", "+14155550123"])
      await p.redis.pexpire(legacy(address), 600 * DAY);

    await p.startWorker();
    await eventually(
      async () => ((await p.redis.exists(keys.addressIndexPacked())) === 1 ? true : undefined),
      "the address indexes to be packed",
    );
    expect(await p.redis.exists(legacy("ana@example.com"), legacy("+14155550123"))).toBe(0);
    const index = new CustomerIndex(p.redis, p.prefix);
    expect(await index.customersOf("ana@example.com")).toEqual(["cus-ana"]);
    expect(await index.customersOf("+14155550123")).toEqual(["cus-ana", "guest-9"]);
  });
});

const minutesAgo = (minutes: number) =>
  DateTime.utc().minus({ minutes }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

describe("the start-up schedule upgrade and this version's own postponed jobs", () => {
  it("keeps a transient failure's retry backoff across a worker restart", async () => {
    // Retries wait 30 to 60 minutes after the first transient failure.
    pipeline = await startPipeline("retry-restart", {
      env: { DELIVERY_RETRY_BASE_MS: "3600000", DELIVERY_RETRY_MAX_MS: "3600000" },
    });
    const p = pipeline;
    const STEP = "thank-you.thank-you";
    p.sink.failNext({ code: 451, message: "4.3.0 try again later" });
    await p.publisher.publish(
      purchaseInput({
        id: "evt-retry",
        orderId: "ord-evt-retry",
        occurredAt: minutesAgo(120),
      }) as never,
    );
    // The first attempt failed transiently: the record is scheduled again with one attempt, and
    // the job waits in the delayed set for its backoff.
    const retrying = await eventually(async () => {
      const r = await stepRecordOf(p, "evt-retry", STEP);
      return r?.state === "scheduled" && r.attempts === 1 ? r : undefined;
    }, "the first attempt to fail transiently");
    const job = await eventually(async () => {
      const j = await p.followUps.getJob(followUpJobId("evt-retry", STEP));
      return (await j?.getState()) === "delayed" ? j : undefined;
    }, "the retry to wait");
    const retryAt =
      Number(await p.redis.zscore(p.followUps.keys.delayed as string, job?.id ?? "")) / 4096;
    expect(retryAt).toBeGreaterThan(Date.now() + 25 * 60_000);
    expect(retrying.dueAt).toBeLessThan(Date.now());

    // A deploy restarts the worker. Beside the retry waits an earlier version's far-future job,
    // which the start-up upgrade moves: its line says the upgrade has looked at every delayed job
    // (one batch, earliest first), the retry's included, and how many it moved.
    await p.worker?.close();
    p.worker = undefined;
    await writeEarlierVersion(p, "evt-old-far", Date.now() + 80 * DAY, "current");
    await p.startWorker();
    const upgraded = await eventually(
      async () =>
        p.logs.find(
          (line) => line.msg === "delayed follow-up jobs moved into the compact schedule",
        ),
      "the start-up upgrade to move the earlier version's job",
    );
    expect(upgraded.moved).toBe(1);
    expect(await whereWaiting(p, "evt-old-far", CHECK_IN)).toBe("schedule");

    // The backoff still holds: the retry's job waits in the delayed set for the same time, and
    // the schedule, from which the promoter would make it a job due at once, does not name it.
    // Nothing was sent again.
    expect(await whereWaiting(p, "evt-retry", STEP)).toBe("job");
    expect(await (await p.followUps.getJob(followUpJobId("evt-retry", STEP)))?.getState()).toBe(
      "delayed",
    );
    expect(
      Number(await p.redis.zscore(p.followUps.keys.delayed as string, job?.id ?? "")) / 4096,
    ).toBe(retryAt);
    const keys = new StoreKeys(p.prefix);
    expect(await p.redis.lrange(keys.scheduleBucket(bucketOf(retrying.dueAt)), 0, -1)).toEqual([]);
    expect(p.sink.attempts).toBe(1);
    expect(p.sink.messages).toHaveLength(0);
  }, 30_000);
});
