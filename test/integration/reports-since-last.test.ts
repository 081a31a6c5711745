import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { Queue } from "bullmq";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseDocument } from "yaml";
import { OWNER_REPORT_JOB, OWNER_REPORTS_QUEUE, queuePrefix } from "../../src/queue/names.js";
import { ownerSchedulerId, syncReportSchedulers } from "../../src/reports/owner-reports.js";
import { periodFromDates } from "../../src/reports/report-period.js";
import { periodTitle } from "../../src/reports/report-phrases.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";

// Each scheduled run of these tests is made as an owner's scheduler makes it, due at a chosen
// time before now (so a running worker takes it at once), by the same repeat strategy trick as
// reports.test.ts; each run's time is the latest its schedule gives, so that the next run the
// worker makes covers from the run's end and the run covers its own period, as on time.

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const EMAIL = "maria@shop.example";
const ID = ownerSchedulerId({ email: EMAIL });
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

interface Schedule {
  readonly timezone: string;
  readonly frequency: "daily" | "weekly";
  /** Luxon's weekday, 1 (Monday) to 7, for a weekly schedule. */
  readonly weekday: number;
  /** The local time the schedule runs at, HH:mm. */
  readonly time: string;
}

/** Daily reports in a zone, at the hour of `at`. */
const dailyIn =
  (zone: string) =>
  (at: DateTime): Schedule => ({
    timezone: zone,
    frequency: "daily",
    weekday: 1,
    time: at.toFormat("HH:00"),
  });

/** A zone where it is not yet 22:00, so that two hours from now is still today there. */
function zoneBefore22(): string {
  const zones = ["Europe/London", "Asia/Tokyo"];
  return zones.find((zone) => DateTime.now().setZone(zone).hour < 22) ?? "Europe/London";
}

const queueOf = (p: PipelineHarness, settings = {}) =>
  new Queue(OWNER_REPORTS_QUEUE, {
    connection: p.redis,
    prefix: queuePrefix(p.prefix, OWNER_REPORTS_QUEUE, p.env.REDIS_CLUSTER),
    ...settings,
  });

/** The rules' owner, or none (with the worker running: once it has reloaded them). */
async function setOwner(p: PipelineHarness, s: Schedule | undefined): Promise<void> {
  const file = path.join(p.configDir, "rules.yaml");
  const doc = parseDocument(await readFile(file, "utf8"));
  const owner = s && {
    name: "Maria Owner",
    email: EMAIL,
    timezone: s.timezone,
    frequency: s.frequency,
    time: s.time,
    ...(s.frequency === "weekly" && { day: DAYS[s.weekday - 1] }),
  };
  doc.setIn(["owners"], doc.createNode(owner ? [owner] : []));
  doc.setIn(["shop", "name"], "Corner Electronics");
  const version = p.worker?.configVersion();
  await writeFile(file, doc.toString());
  if (p.worker) {
    const worker = p.worker;
    await eventually(
      async () => (worker.configVersion() !== version ? true : undefined),
      "the worker to reload the rules",
    );
    // Its reload sets the owner's scheduler after the version changes: one more reload waits
    // for it (and changes nothing).
    await worker.reload();
  }
}

/** The owner's scheduler set with its waiting run due at `dueAt`; resolves once it has ended. */
async function runDue(p: PipelineHarness, s: Schedule, dueAt: DateTime): Promise<unknown> {
  const before = queueOf(p, { settings: { repeatStrategy: () => dueAt.toMillis() } });
  vi.useFakeTimers({ toFake: ["Date"], now: dueAt.toMillis() - 500 });
  try {
    await syncReportSchedulers(before, [
      { name: "Maria Owner", email: EMAIL, alerts: false, ...s } as never,
    ]);
  } finally {
    vi.useRealTimers();
  }
  await before.close();
  return ended(p, `repeat:${ID}:${dueAt.toMillis()}`);
}

/** Waits for a run to complete or fail for good; its state and what it returned. */
async function ended(p: PipelineHarness, jobId: string, promoting = false): Promise<unknown> {
  const queue = queueOf(p);
  try {
    return await eventually(
      async () => {
        // The state first, then the job: a job read before it failed would show one attempt less.
        const state = await queue.getJobState(jobId);
        const job = await queue.getJob(jobId);
        if (state === "delayed" && promoting) await job?.promote();
        if (state === "completed") return { state, result: job?.returnvalue };
        if (state === "failed") return { state, attempts: job?.attemptsMade };
        return undefined;
      },
      `run ${jobId} to end`,
      20_000,
    );
  } finally {
    await queue.close();
  }
}

const subject = (zone: string, since: DateTime, until: DateTime) =>
  `Corner Electronics follow-ups, ${periodTitle(
    periodFromDates(since.toISODate() ?? "", until.toISODate() ?? "", zone),
  )}: 0 sent`;

describe("owners' reports cover the days since the last report sent", () => {
  it("a weekly report moved to another weekday covers from the last report's end, once", async () => {
    pipeline = await startPipeline("report-weekday-change", { startWorker: false });
    const p = pipeline;
    const zone = "Europe/London";
    const now = DateTime.now().setZone(zone);
    const today = now.startOf("day");
    const weekly = (weekday: number): Schedule => ({
      timezone: zone,
      frequency: "weekly",
      weekday,
      time: now.toFormat("HH:00"),
    });
    // Weekly on the weekday three days ago: that run covers the 7 days before it ...
    const first = now.startOf("hour").minus({ days: 3 });
    await setOwner(p, weekly(first.weekday));
    await p.startWorker();
    expect(await runDue(p, weekly(first.weekday), first)).toMatchObject({ state: "completed" });
    const [mail] = await p.sink.waitForMessages(1);
    expect(mail?.parsed.subject).toBe(
      subject(zone, today.minus({ days: 10 }), today.minus({ days: 3 })),
    );
    // ... then moved to today's weekday: today's run covers the three days since, not the 7
    // before today (four of them reported three days ago).
    await setOwner(p, weekly(now.weekday));
    expect(await runDue(p, weekly(now.weekday), now.startOf("hour"))).toMatchObject({
      state: "completed",
    });
    const mails = await p.sink.waitForMessages(2);
    expect(mails[1]?.parsed.subject).toBe(subject(zone, today.minus({ days: 3 }), today));
    // The same run again (BullMQ runs a job at least once; a catch-up of the same days): its
    // days were reported, nothing is sent.
    const queue = queueOf(p);
    await queue.add(
      OWNER_REPORT_JOB,
      {
        owner: ID,
        since: today.minus({ days: 7 }).toISODate(),
        until: today.toISODate(),
      },
      { jobId: `report-due-${ID}-again` },
    );
    await queue.close();
    expect(await ended(p, `report-due-${ID}-again`)).toEqual({
      state: "completed",
      result: { skipped: "its days were reported already" },
    });
    expect(p.sink.messages).toHaveLength(2);
  });

  it("a daily report made weekly covers from the last daily report's end", async () => {
    pipeline = await startPipeline("report-daily-weekly", { startWorker: false });
    const p = pipeline;
    const zone = zoneBefore22();
    const now = DateTime.now().setZone(zone);
    const today = now.startOf("day");
    // Daily at two hours from now: yesterday's run at that time covers the day before yesterday.
    const later = now.plus({ hours: 2 }).startOf("hour");
    const daily = dailyIn(zone)(later);
    await setOwner(p, daily);
    await p.startWorker();
    expect(await runDue(p, daily, later.minus({ days: 1 }))).toMatchObject({
      state: "completed",
    });
    const [mail] = await p.sink.waitForMessages(1);
    expect(mail?.parsed.subject).toBe(
      subject(zone, today.minus({ days: 2 }), today.minus({ days: 1 })),
    );
    // Made weekly on today's weekday: today's run covers yesterday, the one day since.
    const weekly: Schedule = {
      timezone: zone,
      frequency: "weekly",
      weekday: now.weekday,
      time: now.toFormat("HH:00"),
    };
    await setOwner(p, weekly);
    expect(await runDue(p, weekly, now.startOf("hour"))).toMatchObject({ state: "completed" });
    const mails = await p.sink.waitForMessages(2);
    expect(mails[1]?.parsed.subject).toBe(subject(zone, today.minus({ days: 1 }), today));
  });

  it("the run after one that failed six times covers that run's days too", async () => {
    pipeline = await startPipeline("report-after-dropped", { startWorker: false });
    const p = pipeline;
    const zone = zoneBefore22();
    const now = DateTime.now().setZone(zone);
    const today = now.startOf("day");
    const later = now.plus({ hours: 2 }).startOf("hour");
    const daily = dailyIn(zone);
    await setOwner(p, daily(later));
    await p.startWorker();
    // Yesterday's run (the owner's first) fails at each of its six attempts: dropped.
    const transient = { code: 451, message: "try again later" };
    p.sink.failNext(transient, transient, transient, transient, transient, transient);
    const first = later.minus({ days: 1 });
    const before = queueOf(p, { settings: { repeatStrategy: () => first.toMillis() } });
    vi.useFakeTimers({ toFake: ["Date"], now: first.toMillis() - 500 });
    try {
      await syncReportSchedulers(before, [
        { name: "Maria Owner", email: EMAIL, alerts: false, ...daily(later) } as never,
      ]);
    } finally {
      vi.useRealTimers();
    }
    await before.close();
    // Its retries wait minutes (backoff): each is taken at once.
    expect(await ended(p, `repeat:${ID}:${first.toMillis()}`, true)).toEqual({
      state: "failed",
      attempts: 6,
    });
    expect(p.sink.messages).toEqual([]);
    // Today's run covers the day it was to report and its own.
    await setOwner(p, daily(now));
    expect(await runDue(p, daily(now), now.startOf("hour"))).toMatchObject({
      state: "completed",
    });
    const [mail] = await p.sink.waitForMessages(1);
    expect(mail?.parsed.subject).toBe(subject(zone, today.minus({ days: 2 }), today));
  });

  it("a report moved to another zone covers from the last report's end, by date", async () => {
    pipeline = await startPipeline("report-zone-change", { startWorker: false });
    const p = pipeline;
    // Weekly in Tokyo on the weekday three days ago there ...
    const tokyo = DateTime.now().setZone("Asia/Tokyo");
    const first = tokyo.startOf("hour").minus({ days: 3 });
    const inTokyo: Schedule = {
      timezone: "Asia/Tokyo",
      frequency: "weekly",
      weekday: first.weekday,
      time: tokyo.toFormat("HH:00"),
    };
    await setOwner(p, inTokyo);
    await p.startWorker();
    expect(await runDue(p, inTokyo, first)).toMatchObject({ state: "completed" });
    const [mail] = await p.sink.waitForMessages(1);
    const reported = first.startOf("day");
    expect(mail?.parsed.subject).toBe(subject("Asia/Tokyo", reported.minus({ days: 7 }), reported));
    // ... then weekly in Los Angeles, 17 hours behind, on today's weekday there: today's run
    // covers from the day after the last one reported, not the 7 days before today there.
    const la = DateTime.now().setZone("America/Los_Angeles");
    const inLa: Schedule = {
      timezone: la.zoneName ?? "",
      frequency: "weekly",
      weekday: la.weekday,
      time: la.toFormat("HH:00"),
    };
    await setOwner(p, inLa);
    const result = await runDue(p, inLa, la.startOf("hour"));
    expect(result).toMatchObject({ state: "completed" });
    const mails = await p.sink.waitForMessages(2);
    const since = DateTime.fromISO(reported.toISODate() ?? "", { zone: inLa.timezone });
    expect(mails[1]?.parsed.subject).toBe(subject(inLa.timezone, since, la.startOf("day")));
  });

  it("an owner removed from the rules and added again gets the days since they were added, not since their last report", async () => {
    pipeline = await startPipeline("report-owner-readded", { startWorker: false });
    const p = pipeline;
    const zone = zoneBefore22();
    const now = DateTime.now().setZone(zone);
    const today = now.startOf("day");
    const later = now.plus({ hours: 2 }).startOf("hour");
    const daily = dailyIn(zone);
    // Weekly on the weekday three days ago: that run covers the 7 days before it ...
    const first = later.minus({ days: 3 });
    const weekly: Schedule = { ...daily(later), frequency: "weekly", weekday: first.weekday };
    await setOwner(p, weekly);
    await p.startWorker();
    expect(await runDue(p, weekly, first)).toMatchObject({ state: "completed" });
    const [mail] = await p.sink.waitForMessages(1);
    expect(mail?.parsed.subject).toBe(
      subject(zone, today.minus({ days: 10 }), today.minus({ days: 3 })),
    );
    // ... then the owner is removed from the rules (no reports meanwhile), and added again,
    // daily: their first run covers its own day, not the days they were no owner.
    await setOwner(p, undefined);
    const removed = queueOf(p);
    expect(await removed.getJobScheduler(ID)).toBeUndefined();
    await removed.close();
    await setOwner(p, daily(now));
    expect(await runDue(p, daily(now), now.startOf("hour"))).toMatchObject({
      state: "completed",
    });
    const mails = await p.sink.waitForMessages(2);
    expect(mails[1]?.parsed.subject).toBe(subject(zone, today.minus({ days: 1 }), today));
  });
});
