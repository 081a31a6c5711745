import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { runCustomer } from "../../src/cli/customer-command.js";
import { runReport } from "../../src/cli/report-command.js";
import { runSchedule } from "../../src/cli/schedule-command.js";
import type { CustomerTimeline } from "../../src/operations/timeline.js";
import { followUpJobId } from "../../src/queue/names.js";
import type { ScheduleDay } from "../../src/reports/pending-schedule.js";
import type { ReportModel } from "../../src/reports/report-model.js";
import { captureIo } from "../support/capture-io.js";
import { purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  startPipeline,
  stepRecordOf,
} from "../support/pipeline-harness.js";

/**
 * A follow-up whose job waits past its due time (here: the customer's frequency cap) says so in
 * the customer's timeline, with when it is tried next and why, while its due time stays the
 * planned one; what `followups customer` shows an operator who is asked "when will it come?".
 */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const THANK_YOU = "thank-you.thank-you";
const DAY_MS = 86_400_000;

const ago = (hours: number) =>
  DateTime.utc().minus({ hours }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

async function customerCommand(p: PipelineHarness, json: boolean) {
  Object.assign(process.env, { ...p.commandEnv, OUTBOX_DIR: p.outboxDir });
  const io = captureIo();
  const code = await runCustomer("cus-1", { config: p.configDir, json }, io);
  expect(code).toBe(0);
  return io.output();
}

async function scheduleCommand(p: PipelineHarness): Promise<{ days: ScheduleDay[] }> {
  Object.assign(process.env, { ...p.commandEnv, OUTBOX_DIR: p.outboxDir });
  const io = captureIo();
  expect(await runSchedule({ config: p.configDir, days: "30", json: true }, io)).toBe(0);
  return JSON.parse(io.output()) as { days: ScheduleDay[] };
}

async function reportCommand(p: PipelineHarness, until: string): Promise<ReportModel> {
  Object.assign(process.env, { ...p.commandEnv, OUTBOX_DIR: p.outboxDir });
  const io = captureIo();
  expect(await runReport({ config: p.configDir, until, format: "json" }, io)).toBe(0);
  return JSON.parse(io.output()) as ReportModel;
}

describe("a follow-up postponed by the customer's frequency cap", () => {
  it("keeps its planned due time and shows when it is tried next and why", async () => {
    pipeline = await startPipeline("postponed", { startWorker: false });
    const p = pipeline;
    const rulesFile = path.join(p.configDir, "rules.yaml");
    const doc = parseDocument(await readFile(rulesFile, "utf8"));
    doc.setIn(["frequencyCaps", "email"], doc.createNode([{ max: 1, per: "PT24H" }]));
    doc.setIn(["whenCapped", "thank-you"], "defer");
    const rules = doc.get("rules") as { items: { delete(key: string): void }[] };
    for (const rule of rules.items) rule.delete("coalesce");
    await writeFile(rulesFile, doc.toString());
    await p.startWorker();

    // Two purchases two hours ago: both thank-yous are due now, and the cap lets one go today.
    const ids = ["evt-wait-1", "evt-wait-2"];
    for (const id of ids) {
      await p.publisher.publish(
        purchaseInput({ id, orderId: `o-${id}`, occurredAt: ago(2) }) as never,
      );
      await eventProcessed(p, id);
    }
    const [sent, waiting] = await eventually(async () => {
      const records = await Promise.all(ids.map((id) => stepRecordOf(p, id, THANK_YOU)));
      const sentAt = records.findIndex((r) => r?.state === "sent");
      const postponedAt = records.findIndex((r) => r?.postponed !== undefined);
      if (sentAt < 0 || postponedAt < 0) return undefined;
      return [records[sentAt], { id: ids[postponedAt] ?? "", record: records[postponedAt] }];
    }, "one thank-you sent and the other postponed");
    expect(p.sink.messages).toHaveLength(1);
    const record = waiting.record;
    expect(record?.state).toBe("scheduled");
    expect(record?.postponed?.code).toBe("frequency-cap");
    // The cap frees a day after the first thank-you took its slot (just before it was sent).
    const until = record?.postponed?.until ?? 0;
    const sentAt = sent?.changedAt ?? 0;
    expect(until).toBeGreaterThan(sentAt + DAY_MS - 60_000);
    expect(until).toBeLessThanOrEqual(sentAt + DAY_MS);
    // Its job waits until then.
    const job = await p.followUps.getJob(followUpJobId(waiting.id, THANK_YOU));
    expect(await job?.getState()).toBe("delayed");

    const timeline = JSON.parse(await customerCommand(p, true)) as CustomerTimeline;
    const step = timeline.purchases
      .find((purchase) => purchase.eventId === waiting.id)
      ?.steps.find((s) => s.stepId === THANK_YOU);
    expect(step).toMatchObject({
      state: "scheduled",
      // The planned due time, already past: the wait is said apart.
      dueAt: new Date(record?.dueAt ?? 0).toISOString(),
      postponed: {
        until: new Date(until).toISOString(),
        // To the second, as every local time of a timeline.
        untilLocal: DateTime.fromMillis(until, { zone: "Europe/London" })
          .startOf("second")
          .toISO({ suppressMilliseconds: true }),
        code: "frequency-cap",
        why: "the customer's frequency cap is reached",
      },
    });
    expect(Date.parse(step?.dueAt ?? "")).toBeLessThan(Date.now());
    const sentStep = timeline.purchases
      .find((purchase) => purchase.eventId !== waiting.id)
      ?.steps.find((s) => s.stepId === THANK_YOU);
    expect(sentStep).toMatchObject({ state: "sent", postponed: null });

    const text = await customerCommand(p, false);
    const local = DateTime.fromMillis(until, { zone: "Europe/London" })
      .startOf("second")
      .toISO({ suppressMilliseconds: true });
    expect(text).toContain(`${waiting.id}/${THANK_YOU}`);
    expect(text).toContain(`postponed to ${local}: the customer's frequency cap is reached`);

    // The schedule shows it on the day it will go (the rules' zone), not on the day it was due.
    const schedule = await scheduleCommand(p);
    const thankYous = schedule.days.filter(
      (row) => row.channel === "email" && row.ruleId === "thank-you",
    );
    const willGo = DateTime.fromMillis(until, { zone: "Europe/London" }).toISODate();
    expect(thankYous).toEqual([{ date: willGo, channel: "email", ruleId: "thank-you", count: 1 }]);

    // A report for a period that ends before it goes counts it among the follow-ups to come
    // (planned for today, it would otherwise fall before the period's end and out of the count).
    const week = DateTime.fromISO(willGo ?? "", { zone: "Europe/London" }).plus({ days: 7 });
    const emailsThatWeek = schedule.days
      .filter(
        (row) =>
          row.channel === "email" &&
          row.date >= (willGo ?? "") &&
          row.date < (week.toISODate() ?? ""),
      )
      .reduce((sum, row) => sum + row.count, 0);
    expect(emailsThatWeek).toBeGreaterThanOrEqual(1);
    const report = await reportCommand(p, willGo ?? "");
    expect(report.upcoming.next7Days.email).toBe(emailsThatWeek);

    // Fallen due while no worker takes it (its queue paused, say), its job waits in the waiting
    // list: the schedule still shows it on the day it was postponed to, not on its planned day.
    await p.worker?.close();
    p.worker = undefined;
    await job?.promote();
    expect(await job?.getState()).toBe("waiting");
    const whileWaiting = await scheduleCommand(p);
    expect(
      whileWaiting.days.filter((row) => row.channel === "email" && row.ruleId === "thank-you"),
    ).toEqual([{ date: willGo, channel: "email", ruleId: "thank-you", count: 1 }]);
  });

  it("leaves the schedule and the owners' report uncorrected, not failed, when delayed jobs cannot be read", async () => {
    pipeline = await startPipeline("postponed-unreadable", { startWorker: false });
    const p = pipeline;
    // Every shard's delayed set of the wrong type: BullMQ's read of it fails.
    for (const queue of p.followUpQueues)
      await p.redis.set(queue.toKey("delayed"), "not a sorted set");
    expect((await scheduleCommand(p)).days).toEqual([]);
    const today = DateTime.now().setZone("Europe/London").toISODate() ?? "";
    expect((await reportCommand(p, today)).upcoming.next7Days).toEqual({
      email: 0,
      sms: 0,
      voice: 0,
    });
  });
});
