import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { Queue } from "bullmq";
import { DateTime, Duration } from "luxon";
import { PNG } from "pngjs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseDocument } from "yaml";
import { runReport } from "../../src/cli/report-command.js";
import { OWNER_REPORT_JOB, OWNER_REPORTS_QUEUE, queuePrefix } from "../../src/queue/names.js";
import {
  ownerSchedulerId,
  REPORT_QUEUE_SETTINGS,
  syncReportSchedulers,
} from "../../src/reports/owner-reports.js";
import type { ReportModel } from "../../src/reports/report-model.js";
import { periodFromDates, reportPeriodAt } from "../../src/reports/report-period.js";
import { periodTitle } from "../../src/reports/report-phrases.js";
import { DeliveryLedger, sumHours } from "../../src/store/delivery-ledger.js";
import { shardScope } from "../../src/store/keys.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
} from "../support/pipeline-harness.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const OWNER = {
  name: "Maria Owner",
  email: "maria@shop.example",
  timezone: "Europe/London",
  frequency: "daily",
  // Half a day from now: the report the scheduler sends never lands in the middle of a test.
  time: DateTime.now().setZone("Europe/London").plus({ hours: 12 }).toFormat("HH:00"),
};
const ago = (hours: number) =>
  DateTime.utc().minus({ hours }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

/** The last Sunday of March (London's change to BST at 01:00 UTC) whose Saturday is ahead. */
function nextSpringForward(): DateTime {
  const now = DateTime.utc();
  for (let year = now.year; ; year++) {
    const end = DateTime.utc(year, 3, 31);
    const sunday = end.minus({ days: end.weekday % 7 });
    if (sunday.minus({ days: 1 }).set({ hour: 6 }) > now.plus({ minutes: 5 })) return sunday;
  }
}

/** The next day (a week from now at least) on which `zone`'s local midnight does not exist. */
function nextMidnightSkipped(zone: string): DateTime {
  let day = DateTime.utc().plus({ days: 7 }).setZone(zone).startOf("day");
  for (;;) {
    day = day.plus({ days: 1 });
    const midnight = DateTime.fromObject(
      { year: day.year, month: day.month, day: day.day },
      { zone },
    );
    if (midnight.hour !== 0) return midnight;
  }
}

/** The instant `hour`:00 UTC on a day, as BullMQ's next run reads back. */
const at = (day: DateTime, hour: number) => day.set({ hour }).toISO() ?? "";

async function withOwner(
  p: PipelineHarness,
  owner: typeof OWNER | readonly object[] = OWNER,
): Promise<void> {
  const file = path.join(p.configDir, "rules.yaml");
  const doc = parseDocument(await readFile(file, "utf8"));
  doc.setIn(["owners"], doc.createNode(Array.isArray(owner) ? owner : [owner]));
  doc.setIn(["shop", "name"], "Corner Electronics");
  await writeFile(file, doc.toString());
}

async function settled(p: PipelineHarness, pairs: [string, string][]) {
  return eventually(
    async () => {
      const states = await Promise.all(
        pairs.map(async ([e, s]) => (await p.store.stepRecords(e, [s])).get(s)?.state),
      );
      return states.every((s) => s && s !== "scheduled" && s !== "sending") ? states : undefined;
    },
    "steps to settle",
    15_000,
  );
}

/** A run of the pipeline with sends, a permanent failure, a skip, a refund and an SMS. */
async function busyDay(p: PipelineHarness) {
  const tv = (id: string, extra = {}) =>
    purchaseInput({
      id,
      orderId: `o-${id}`,
      occurredAt: ago(2),
      items: [item("televisions", "650.00")],
      customer: { id: `c-${id}` },
      ...extra,
    });
  await p.publisher.publish(tv("r-1") as never);
  await p.publisher.publish(tv("r-2") as never);
  await p.sink.waitForMessages(2);
  p.sink.failNext({ code: 550, message: "no such user" });
  await p.publisher.publish(tv("r-3") as never);
  await p.publisher.publish(tv("r-4", { customer: { id: "c-r-4", phone: undefined } }) as never);
  await p.publisher.publish(
    purchaseInput({
      id: "r-5",
      orderId: "o-r-5",
      occurredAt: ago(0),
      items: [item("sofas", "900.00")],
      customer: { id: "c-r-5" },
    }) as never,
  );
  await settled(p, [
    ["r-1", "big-ticket.thank-you"],
    ["r-2", "big-ticket.thank-you"],
    ["r-3", "big-ticket.thank-you"],
    ["r-4", "big-ticket.thank-you"],
  ]);
  await p.publisher.publish({
    type: "purchase.refunded",
    id: "ref-5",
    occurredAt: ago(0),
    orderId: "o-r-5",
  });
  await settled(p, [
    ["r-5", "big-ticket.check-in"],
    ["r-5", "big-ticket.thank-you"],
  ]);
  await promoteStep(p, "r-1", "big-ticket.check-in");
  await p.twilio.waitForMessages(1);
  await settled(p, [["r-1", "big-ticket.check-in"]]);
}

describe("ledger and owner reports", () => {
  it("counts exactly what the SMTP server and the Twilio server received", async () => {
    pipeline = await startPipeline("ledger");
    const p = pipeline;
    await busyDay(p);
    const counts = sumHours(
      await new DeliveryLedger(p.redis, shardScope(p.prefix, 0, p.shards)).hours(
        Date.now() - 7_200_000,
        Date.now() + 3_600_000,
      ),
    );
    const total = (prefix: string) =>
      [...counts].filter(([f]) => f.startsWith(prefix)).reduce((n, [, c]) => n + c, 0);

    expect(total("sent|email|")).toBe(p.sink.messages.length);
    expect(total("sent|sms|")).toBe(p.twilio.messages.length);
    expect(p.sink.messages.length).toBe(3);
    expect(total("failed|email|thank-you|")).toBe(1);
    expect(counts.get("reason|failed|email|thank-you|permanent 550")).toBe(1);
    expect(counts.get("reason|skipped|sms|check-in|no-contact")).toBe(1);
    expect(total("cancelled|")).toBe(2);
    // Scheduled: two steps for each of r-1, r-2, r-3, r-5; r-4 has no phone, so one.
    expect(total("scheduled|")).toBe(9);
    // Pending now: the check-ins of r-2 and r-3, three months out.
    const pending = await new DeliveryLedger(p.redis, shardScope(p.prefix, 0, p.shards)).pending(
      Date.now() + 80 * 86_400_000,
      30,
    );
    expect(pending.sms).toBe(2);
  });

  it("emails the owner a report whose numbers match the ledger, with an inline chart", async () => {
    pipeline = await startPipeline("report-mail", { startWorker: false });
    const p = pipeline;
    await withOwner(p);
    await p.startWorker();
    await busyDay(p);
    const today = DateTime.now().setZone(OWNER.timezone);
    await new Queue(OWNER_REPORTS_QUEUE, {
      connection: p.redis,
      prefix: queuePrefix(p.prefix, OWNER_REPORTS_QUEUE, p.env.REDIS_CLUSTER),
    }).add(OWNER_REPORT_JOB, {
      owner: ownerSchedulerId(OWNER),
      since: today.toISODate(),
      until: today.plus({ days: 1 }).toISODate(),
    });
    const mails = await p.sink.waitForMessages(4);
    const report = mails.find((m) => m.envelope.rcptTo.includes(OWNER.email));
    expect(report?.parsed.subject).toContain("Corner Electronics");
    expect(report?.parsed.text).toMatch(/sent\s/i);
    const chart = report?.parsed.attachments.find((a) => a.contentType === "image/png");
    expect(chart?.contentId).toBeTruthy();
    // mailparser resolves the HTML's cid: reference to the attached image: proof they are linked.
    expect(chart?.related).toBe(true);
    expect(report?.parsed.html).toMatch(/<img src="data:image\/png;base64,/);
    const png = PNG.sync.read(chart?.content as Buffer);
    expect(png.width).toBeGreaterThan(100);

    const io = captureIo();
    Object.assign(process.env, {
      ...p.commandEnv,
    });
    await runReport(
      {
        config: p.configDir,
        since: today.toISODate() ?? "",
        until: today.plus({ days: 1 }).toISODate() ?? "",
        timezone: OWNER.timezone,
        format: "json",
      },
      io,
    );
    const model = JSON.parse(io.output()) as ReportModel;
    expect(model.totals.sent).toBe(4);
    expect(model.totals.failed).toBe(1);
    expect(model.totals.cancelled).toBe(2);
    expect(model.topFailureReasons[0]?.code).toBe("permanent 550");
    // Scheduled: two steps for each of r-1, r-2, r-3, r-5; r-4 has no phone, so one (as the ledger
    // test counts). The emailed text says so in its glance line and in the table's total row
    // (columns: scheduled, sent, delivered, failed, skipped, cancelled; opt-outs have a section).
    expect(model.totals.scheduled).toBe(9);
    expect(report?.parsed.text).toMatch(/^ {2}scheduled 9, /m);
    expect(report?.parsed.text).toMatch(/^ {2}total +9 +4 +0 +1 +1 +2$/m);
    expect(report?.parsed.text).toMatch(/^ {2}No one opted out in this day\.$/m);
  });

  it("covers the days before the time a scheduled report was due, not the days before its job was made", async () => {
    pipeline = await startPipeline("report-scheduled", { startWorker: false });
    const p = pipeline;
    // Due at the owner's next midnight: the day after the worker's scheduler made its job (as
    // each run's job is made when the run before it starts, a day or a week earlier).
    const owner = { ...OWNER, time: "00:00" };
    await withOwner(p, owner);
    await p.startWorker();
    const queue = new Queue(OWNER_REPORTS_QUEUE, {
      connection: p.redis,
      prefix: queuePrefix(p.prefix, OWNER_REPORTS_QUEUE, p.env.REDIS_CLUSTER),
    });
    const due = await eventually(
      async () => (await queue.getJobScheduler(ownerSchedulerId(owner)))?.next,
      "the owner's report scheduler",
    );
    const [job] = await queue.getDelayed();
    // When a delayed job comes due, BullMQ sets its delay to 0 and moves it to wait; promote does
    // the same now, so the test need not wait until midnight.
    await job?.promote();
    const [mail] = await p.sink.waitForMessages(1);
    await queue.close();
    const period = reportPeriodAt(
      { frequency: "daily", timezone: owner.timezone },
      DateTime.fromMillis(Number(due)),
    );
    expect(period.until).toBe(
      DateTime.now().setZone(owner.timezone).plus({ days: 1 }).startOf("day").toISO({
        suppressMilliseconds: true,
      }),
    );
    expect(mail?.parsed.subject).toBe(
      `Corner Electronics follow-ups, ${periodTitle(period)}: 0 sent`,
    );
  });

  it("sends the run that came due while no worker took it, once, when workers start after its time", async () => {
    pipeline = await startPipeline("report-due-at-start", { startWorker: false });
    const p = pipeline;
    // Their time is this hour's start: the schedule's next run is tomorrow's, and covers today.
    const owner = {
      ...OWNER,
      time: DateTime.now().setZone(OWNER.timezone).toFormat("HH:00"),
    };
    await withOwner(p, owner);
    const prefix = queuePrefix(p.prefix, OWNER_REPORTS_QUEUE, p.env.REDIS_CLUSTER);
    // The owner's scheduler as a worker left it, its next run due in a moment; every worker is
    // down when it comes due.
    const dueAt = Date.now() + 500;
    const before = new Queue(OWNER_REPORTS_QUEUE, {
      connection: p.redis,
      prefix,
      settings: { repeatStrategy: () => dueAt },
    });
    await syncReportSchedulers(before, [{ ...owner, weekday: 1, alerts: false } as never]);
    await before.close();
    await eventually(async () => (Date.now() > dueAt + 100 ? true : undefined), "the run's time");
    // Two workers set the schedulers at once after it (one is slow to take jobs), then one
    // starts (and sets them again).
    const setting = new Queue(OWNER_REPORTS_QUEUE, {
      connection: p.redis,
      prefix,
      settings: REPORT_QUEUE_SETTINGS,
    });
    const full = { ...owner, weekday: 1, alerts: false } as never;
    await Promise.all([
      syncReportSchedulers(setting, [full]),
      syncReportSchedulers(setting, [full]),
    ]);
    await setting.close();
    await p.startWorker();
    const [mail] = await p.sink.waitForMessages(1);
    const period = reportPeriodAt(
      { frequency: "daily", timezone: OWNER.timezone },
      DateTime.fromMillis(dueAt),
    );
    expect(mail?.envelope.rcptTo).toEqual([OWNER.email]);
    expect(mail?.parsed.subject).toBe(
      `Corner Electronics follow-ups, ${periodTitle(period)}: 0 sent`,
    );
    // Once: the scheduler's own next run is a day on.
    const queue = new Queue(OWNER_REPORTS_QUEUE, { connection: p.redis, prefix });
    const scheduler = await queue.getJobScheduler(ownerSchedulerId(owner));
    expect(Number(scheduler?.next)).toBeGreaterThan(Date.now() + 3_600_000);
    expect(await queue.getJobCountByTypes("completed", "waiting", "active", "delayed")).toBe(2);
    await queue.close();
  });

  it("sends the run that came due while no worker took it for the days its own schedule covered, when the rules since changed it", async () => {
    pipeline = await startPipeline("report-due-changed", { startWorker: false });
    const p = pipeline;
    const prefix = queuePrefix(p.prefix, OWNER_REPORTS_QUEUE, p.env.REDIS_CLUSTER);
    const time = DateTime.now().setZone(OWNER.timezone).toFormat("HH:00");
    // A weekly owner's run comes due while every worker is down ...
    const dueAt = Date.now() + 500;
    const before = new Queue(OWNER_REPORTS_QUEUE, {
      connection: p.redis,
      prefix,
      settings: { repeatStrategy: () => dueAt },
    });
    const weekly = { ...OWNER, time, frequency: "weekly", weekday: 1, alerts: false };
    await syncReportSchedulers(before, [weekly as never]);
    await before.close();
    await eventually(async () => (Date.now() > dueAt + 100 ? true : undefined), "the run's time");
    // ... and a worker starts with rules that make the owner's reports daily, in another zone.
    const queue = new Queue(OWNER_REPORTS_QUEUE, {
      connection: p.redis,
      prefix,
      settings: REPORT_QUEUE_SETTINGS,
    });
    await syncReportSchedulers(queue, [
      { ...weekly, frequency: "daily", timezone: "Asia/Tokyo" } as never,
    ]);
    // The missed run covers the week it was due to cover, in its zone: a daily run from now on
    // covers one day, and the six before it would be in no report.
    const week = reportPeriodAt(
      { frequency: "weekly", timezone: OWNER.timezone },
      DateTime.fromMillis(dueAt),
    );
    const due = await queue.getJob(`report-due-${ownerSchedulerId(OWNER)}-${dueAt}`);
    expect(due?.data).toEqual({
      owner: ownerSchedulerId(OWNER),
      since: week.since.slice(0, 10),
      until: week.until.slice(0, 10),
    });
    await queue.close();
  });

  it("sends the run that came due days or weeks before workers started for every day up to the next run's, once", async () => {
    pipeline = await startPipeline("report-due-outage", { startWorker: false });
    const p = pipeline;
    const prefix = queuePrefix(p.prefix, OWNER_REPORTS_QUEUE, p.env.REDIS_CLUSTER);
    // Each owner's time is this hour's start in their zone: each schedule's next run is after
    // today's, and covers from today (a daily run the day before it, a weekly one the 7 days).
    const owner = (email: string, timezone: string, frequency: string) => {
      const now = DateTime.now().setZone(timezone);
      return {
        ...OWNER,
        email,
        timezone,
        frequency,
        weekday: now.weekday,
        time: now.toFormat("HH:00"),
        alerts: false,
      };
    };
    const daily = owner("daily@shop.example", "Europe/London", "daily");
    const weekly = owner("weekly@shop.example", "Europe/Paris", "weekly");
    const longAgo = owner("long@shop.example", "America/New_York", "daily");
    // Each scheduler's waiting run came due at that time some days ago, and no worker took it:
    // every worker was down since (three days, three weeks, 500 days).
    const missedAt = (o: typeof daily, days: number) =>
      DateTime.now().setZone(o.timezone).startOf("hour").minus({ days }).toMillis();
    const due = new Map([
      [daily.timezone, missedAt(daily, 3)],
      [weekly.timezone, missedAt(weekly, 21)],
      [longAgo.timezone, missedAt(longAgo, 500)],
    ]);
    const before = new Queue(OWNER_REPORTS_QUEUE, {
      connection: p.redis,
      prefix,
      settings: { repeatStrategy: (_millis, opts) => due.get(opts.tz ?? "") },
    });
    // BullMQ makes a scheduler's next run no earlier than its clock's now: the schedulers are
    // set with the clock put back before the earliest of those times.
    vi.useFakeTimers({ toFake: ["Date"], now: Math.min(...due.values()) - 500 });
    try {
      await syncReportSchedulers(before, [daily, weekly, longAgo] as never);
    } finally {
      vi.useRealTimers();
    }
    await before.close();
    // Two workers set the schedulers at once, now.
    const queue = new Queue(OWNER_REPORTS_QUEUE, {
      connection: p.redis,
      prefix,
      settings: REPORT_QUEUE_SETTINGS,
    });
    const owners = [daily, weekly, longAgo] as never;
    await Promise.all([syncReportSchedulers(queue, owners), syncReportSchedulers(queue, owners)]);
    const dueRun = async (o: typeof daily) =>
      (await queue.getJob(`report-due-${ownerSchedulerId(o)}-${due.get(o.timezone)}`))?.data;
    const today = (o: typeof daily) => DateTime.now().setZone(o.timezone).toISODate() ?? "";
    const dayOf = (o: typeof daily, days: number) =>
      DateTime.fromMillis(due.get(o.timezone) ?? 0, { zone: o.timezone })
        .minus({ days })
        .toISODate();
    // From the missed run's first day to the first day of the schedule's next run, which covers
    // from today: the days of the runs the scheduler never made are in it, and none twice.
    expect(await dueRun(daily)).toEqual({
      owner: ownerSchedulerId(daily),
      since: dayOf(daily, 1),
      until: today(daily),
    });
    expect(await dueRun(weekly)).toEqual({
      owner: ownerSchedulerId(weekly),
      since: dayOf(weekly, 7),
      until: today(weekly),
    });
    // At most the 400 days a report covers: the latest (the ledger keeps no older).
    expect(await dueRun(longAgo)).toEqual({
      owner: ownerSchedulerId(longAgo),
      since: DateTime.now().setZone(longAgo.timezone).minus({ days: 400 }).toISODate(),
      until: today(longAgo),
    });
    for (const o of [daily, weekly, longAgo]) {
      const next = Number((await queue.getJobScheduler(ownerSchedulerId(o)))?.next);
      expect(reportPeriodAt(o as never, DateTime.fromMillis(next)).since.slice(0, 10)).toBe(
        today(o),
      );
    }
    // Once each, however many workers set the schedulers: three runs due, three scheduled.
    expect(await queue.getJobCountByTypes("waiting", "delayed")).toBe(6);
    await queue.close();
    // A worker with these owners sends them (the 400 days' too: a period it can report).
    await withOwner(
      p,
      [daily, weekly, longAgo].map(({ name, email, timezone, frequency, time, weekday }) => ({
        name,
        email,
        timezone,
        frequency,
        time,
        ...(frequency === "weekly" && {
          day: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][weekday - 1],
        }),
      })),
    );
    await p.startWorker();
    const mails = await p.sink.waitForMessages(3);
    expect(mails.map((m) => m.envelope.rcptTo[0]).sort()).toEqual([
      daily.email,
      longAgo.email,
      weekly.email,
    ]);
  });

  it("sends a run a running worker takes days late for every day up to the next run's", async () => {
    // The worker stays up while its run comes due and is taken days later (Redis unreachable or
    // refusing writes meanwhile): no start or reload sets the schedulers again.
    pipeline = await startPipeline("report-taken-late", { startWorker: false });
    const p = pipeline;
    const prefix = queuePrefix(p.prefix, OWNER_REPORTS_QUEUE, p.env.REDIS_CLUSTER);
    const zone = "Europe/London";
    const now = DateTime.now().setZone(zone);
    const owner = { ...OWNER, timezone: zone, frequency: "daily", time: now.toFormat("HH:00") };
    await withOwner(p, owner);
    await p.startWorker();
    const due = now.startOf("hour").minus({ days: 3 }).toMillis();
    const before = new Queue(OWNER_REPORTS_QUEUE, {
      connection: p.redis,
      prefix,
      settings: { repeatStrategy: () => due },
    });
    vi.useFakeTimers({ toFake: ["Date"], now: due - 500 });
    try {
      await syncReportSchedulers(before, [{ ...owner, weekday: 1, alerts: false }] as never);
    } finally {
      vi.useRealTimers();
    }
    await before.close();
    const [mail] = await p.sink.waitForMessages(1);
    // From the day before the run's time to today, the first day the next run covers: the days
    // of the runs the scheduler never made are in it.
    const period = periodFromDates(
      DateTime.fromMillis(due, { zone }).minus({ days: 1 }).toISODate() ?? "",
      now.toISODate() ?? "",
      zone,
    );
    expect(mail?.parsed.subject).toBe(
      `Corner Electronics follow-ups, ${periodTitle(period)}: 0 sent`,
    );
  });

  it("prints the same model as text and CSV", async () => {
    pipeline = await startPipeline("report-cli");
    const p = pipeline;
    await busyDay(p);
    Object.assign(process.env, {
      ...p.commandEnv,
    });
    const today = DateTime.now().setZone("Europe/London");
    const range = {
      config: p.configDir,
      since: today.toISODate() ?? "",
      until: today.plus({ days: 1 }).toISODate() ?? "",
      timezone: "Europe/London",
    };
    const csv = captureIo();
    await runReport({ ...range, format: "csv" }, csv);
    const [header, ...rows] = csv.output().trim().split(/\r?\n/);
    expect(header).toBe(
      "shop,since,until,channel,kind,scheduled,sent,delivered,undelivered,failed,skipped,cancelled,optout,reply,broughtBack,revenue,checkedIn,checkedInBoughtAgain,checkedInRate,notCheckedIn,notCheckedInBoughtAgain,notCheckedInRate",
    );
    expect(rows.some((row) => row.includes(",email,thank-you,5,3,0,0,1,0,1,0,0,0,"))).toBe(true);
    const text = captureIo();
    await runReport({ ...range, format: "text" }, text);
    expect(text.output()).toContain("thank-you");
    await expect(runReport({ ...range, format: "xml" }, captureIo())).rejects.toThrow(
      /--format: expected text, json or csv/,
    );
    // More than the ledger keeps: a usage error before anything is read.
    await expect(
      runReport(
        { ...range, since: "2024-01-01", until: "2026-01-01", format: "json" },
        captureIo(),
      ),
    ).rejects.toMatchObject({
      code: 2,
      message: "--since to --until: a report covers at most 400 days (the ledger keeps 401)",
    });
  });

  it("fails a run added by hand whose period cannot be reported at once, with the reason, not retrying it", async () => {
    pipeline = await startPipeline("report-bad-period", { startWorker: false });
    const p = pipeline;
    await withOwner(p);
    await p.startWorker();
    const queue = new Queue(OWNER_REPORTS_QUEUE, {
      connection: p.redis,
      prefix: queuePrefix(p.prefix, OWNER_REPORTS_QUEUE, p.env.REDIS_CLUSTER),
    });
    const runs = [
      { since: "2024-01-01", until: "2026-01-01" },
      // Not dates, or one end only (not a scheduled run's period either).
      { since: "2026-11-01x", until: "2026-11-08" },
      { since: "2026-11-01", until: "2026-11-08T25:00" },
      { since: "2026-11", until: "2026-12" },
      { since: "2026-11-01" },
      { until: 20261108 },
    ];
    const ended = await Promise.all(
      runs.map(async (period) => {
        const job = await queue.add(
          OWNER_REPORT_JOB,
          { owner: ownerSchedulerId(OWNER), ...period },
          { attempts: 5, backoff: { type: "fixed", delay: 60_000 } },
        );
        await eventually(async () => {
          const state = await queue.getJobState(job.id ?? "");
          return state === "failed" || state === "delayed" || state === "completed"
            ? state
            : undefined;
        }, "the run to end or wait for a retry");
        const done = await queue.getJob(job.id ?? "");
        return [await done?.getState(), done?.attemptsMade, done?.failedReason];
      }),
    );
    expect(ended).toEqual([
      [
        "failed",
        1,
        "report period 2024-01-01 to 2026-01-01: a report covers at most 400 days (the ledger keeps 401)",
      ],
      ["failed", 1, "report period 2026-11-01x to 2026-11-08: dates are YYYY-MM-DD"],
      ["failed", 1, "report period 2026-11-01 to 2026-11-08T25:00: dates are YYYY-MM-DD"],
      ["failed", 1, "report period 2026-11 to 2026-12: dates are YYYY-MM-DD"],
      ["failed", 1, "report period 2026-11-01 to (none): a run names both since and until"],
      ["failed", 1, "report period (none) to 20261108: a run names both since and until"],
    ]);
    expect(p.sink.messages).toEqual([]);
    await queue.close();
  });

  it("fires an owner's report at 08:00 local time on both sides of a DST change", async () => {
    pipeline = await startPipeline("report-dst", { startWorker: false });
    const p = pipeline;
    // As the worker makes it: its repeat strategy works out each next run.
    const queue = new Queue(OWNER_REPORTS_QUEUE, {
      connection: p.redis,
      prefix: queuePrefix(p.prefix, OWNER_REPORTS_QUEUE, p.env.REDIS_CLUSTER),
      settings: REPORT_QUEUE_SETTINGS,
    });
    const owner = {
      ...OWNER,
      time: "08:00",
      frequency: "daily" as const,
      weekday: 1 as const,
      alerts: false,
      alertWindow: Duration.fromObject({ minutes: 15 }),
    };
    const nextRun = async (startIso: string, of = owner) => {
      await syncReportSchedulers(queue, [of], { startDate: Date.parse(startIso) });
      const scheduler = await queue.getJobScheduler(ownerSchedulerId(of));
      await queue.removeJobScheduler(ownerSchedulerId(of));
      return DateTime.fromMillis(Number(scheduler?.next), { zone: "utc" }).toISO();
    };
    // London leaves GMT for BST on the last Sunday of March: the next one still ahead (a start
    // date in the past counts from now, so a fixed year would stop testing the change).
    const change = nextSpringForward();
    const saturday = change.minus({ days: 1 });
    expect(await nextRun(at(saturday, 6))).toBe(at(saturday, 8));
    expect(await nextRun(at(saturday, 9))).toBe(at(change, 7));
    // A daily report at midnight in Santiago, whose DST begins at midnight: on that day it runs
    // at 01:00, the first local time there is, not a day later (the day before was in no report).
    const santiago = { ...owner, time: "00:00", timezone: "America/Santiago" };
    const skipped = nextMidnightSkipped(santiago.timezone);
    const dayBefore = skipped.minus({ days: 1 }).set({ hour: 12 });
    expect(await nextRun(dayBefore.toUTC().toISO() ?? "", santiago)).toBe(
      skipped.set({ hour: 1 }).toUTC().toISO(),
    );
    await queue.close();
  });
});
