import { createHash } from "node:crypto";
import { defaultRepeatStrategy, type Queue, type RepeatOptions } from "bullmq";
import { DateTime } from "luxon";
import type { DeliveryChannel, EmailMessage } from "../channels/channel.js";
import type { Owner, RuleSet } from "../domain/rules.js";
import type { Logger } from "../logger.js";
import { OWNER_REPORT_JOB } from "../queue/names.js";
import { DeliveryLedger, pendingByChannel } from "../store/delivery-ledger.js";
import { FollowUpStore } from "../store/follow-up-store.js";
import { shardScope } from "../store/keys.js";
import type { RedisClient } from "../store/redis-client.js";
import { Shards } from "../store/shards.js";
import { SmsReferences } from "../store/sms-references.js";
import { StepReplies } from "../store/step-replies.js";
import { buildReportModel } from "./build-report-model.js";
import { renderDailySendsChart } from "./daily-sends-chart.js";
import type { CountedPending } from "./pending-schedule.js";
import { renderReportHtml, renderReportText } from "./render-report.js";
import type { ReportModel, ReportPeriod } from "./report-model.js";
import {
  catchUpDates,
  nextReportRun,
  previousPeriod,
  reportCronPattern,
  reportPeriodAt,
} from "./report-period.js";
import { periodTitle } from "./report-phrases.js";

const CHART_CID = "daily-sends-chart@followups";
/** How many unreadable purchases a report's warning names by event id. */
const UNREADABLE_LOGGED = 20;

/** What a report reads in a shard: its replies and the purchases they answer. */
export interface ReportShard {
  readonly store: Pick<FollowUpStore, "summary">;
  readonly replies: Pick<StepReplies, "get">;
}

/** Where a report's figures come from. */
export interface ReportSources {
  /** A ledger that adds up the global ledger and every shard's. */
  readonly ledger: Pick<DeliveryLedger, "hours" | "pendingCounts">;
  readonly smsReferences: Pick<SmsReferences, "repliesBetween">;
  /** Every shard's stores: the replies index names the shard of each reply. */
  readonly shards: Pick<Shards<ReportShard>, "of" | "count">;
  /**
   * Corrections of the pending counts for follow-ups postponed past their planned due time
   * (operations/postponed-moves.ts), so that the upcoming totals count each on the day it will
   * go; without them, by planned due day.
   */
  readonly postponed?: () => Promise<readonly CountedPending[]>;
  /** Told of replies whose purchase cannot be read (by event id and error name only). */
  readonly logger?: Pick<Logger, "warn">;
}

/**
 * The report sources of a deployment of `shards` shards (FOLLOW_UP_SHARDS) on a connection: the
 * ledger reads add up every shard's counts.
 */
export function reportSourcesOn(
  redis: RedisClient,
  prefix: string,
  shards: number,
  postponed?: ReportSources["postponed"],
  logger?: ReportSources["logger"],
): ReportSources {
  return {
    ...(postponed && { postponed }),
    ...(logger && { logger }),
    ledger: new DeliveryLedger(redis, shardScope(prefix, 0, shards)),
    smsReferences: new SmsReferences(redis, prefix),
    shards: new Shards(shards, (shard) => {
      const scope = shardScope(prefix, shard, shards);
      return { store: new FollowUpStore(redis, scope), replies: new StepReplies(redis, scope) };
    }),
  };
}

/**
 * Reads the ledger for a period (and the one before it) and builds the report model; `now` tells
 * whether customers of the period may still buy again within the attribution window.
 */
export async function collectReport(
  sources: ReportSources,
  rules: RuleSet,
  ownerName: string,
  period: ReportPeriod,
  now: number = Date.now(),
): Promise<ReportModel> {
  const since = Date.parse(period.since);
  const until = Date.parse(period.until);
  const before = previousPeriod(period);
  const [hours, previousHours, pending, moves, replies] = await Promise.all([
    sources.ledger.hours(since, until),
    sources.ledger.hours(Date.parse(before.since), Date.parse(before.until)),
    // UTC days from the one the period ends in: 30 local days fit in 32 of them.
    sources.ledger.pendingCounts(until, 32),
    sources.postponed?.() ?? [],
    sources.smsReferences.repliesBetween(since, until),
  ]);
  // The owner's days from the period's end (each ending at a midnight, also after a day that
  // began at 01:00 for DST); a follow-up due before it but postponed past it is still to come.
  const counted = [...pending, ...moves];
  const daysAfter = (days: number) =>
    DateTime.fromMillis(until, { zone: period.timezone }).plus({ days }).startOf("day").toMillis();
  const next7Days = pendingByChannel(counted, until, daysAfter(7));
  const next30Days = pendingByChannel(counted, until, daysAfter(30));
  /** Purchases of the period's replies that cannot be read: event id → the error's name. */
  const unreadableOnes = new Map<string, string>();
  const withNames = await Promise.all(
    // A shard the deployment does not have holds no reply: left out.
    replies
      .filter(({ shard }) => shard < sources.shards.count)
      .map(async ({ eventId, stepId, shard, n }) => {
        const { replies: stepReplies, store } = sources.shards.of(shard);
        const [reply, { unreadable, ...summary }] = await Promise.all([
          stepReplies.get(eventId, stepId, n),
          store.summary(eventId),
        ]);
        if (reply && unreadable !== undefined) unreadableOnes.set(eventId, unreadable);
        return (
          reply && {
            receivedAt: reply.receivedAt,
            text: reply.text,
            channel: reply.channel,
            id: reply.id,
            ...(reply.resolved && { resolvedAt: reply.resolved.at }),
            ...summary,
          }
        );
      }),
  );
  if (unreadableOnes.size > 0) {
    // The decoder's error by name only: its message may quote the stored bytes.
    sources.logger?.warn(
      {
        unreadable: unreadableOnes.size,
        eventIds: [...unreadableOnes.keys()].slice(0, UNREADABLE_LOGGED),
        errors: [...new Set(unreadableOnes.values())],
      },
      "report: replies to purchases whose stored purchase cannot be read are shown without order and name",
    );
  }
  return buildReportModel({
    shopName: rules.shopName,
    ownerName,
    period,
    previousPeriod: before,
    hours,
    previousHours,
    upcoming: { next7Days, next30Days },
    replies: withNames.filter((reply) => reply !== undefined),
    attribution: { window: rules.attribution.window.toISO() ?? "P30D", now },
    unreadablePurchases: unreadableOnes.size,
  });
}

/** The report as an email: text and HTML parts and the daily-sends chart as an inline image. */
export function reportEmail(model: ReportModel, owner: Owner, followUpId: string): EmailMessage {
  const unhappy = model.unhappyReplies.length;
  return {
    channel: "email",
    followUpId,
    to: owner.email,
    subject:
      `${model.shopName} follow-ups, ${periodTitle(model.period)}: ${model.totals.sent} sent` +
      (unhappy > 0 ? `, ${unhappy} unhappy ${unhappy === 1 ? "reply" : "replies"}` : ""),
    text: renderReportText(model),
    html: renderReportHtml(model, { chartCid: CHART_CID }),
    attachments: [
      {
        filename: "daily-sends.png",
        contentType: "image/png",
        content: renderDailySendsChart(model.dailySends),
        cid: CHART_CID,
      },
    ],
  };
}

/** Stable id of an owner's scheduler, from their email (the same owner keeps the same id). */
export function ownerSchedulerId(owner: Pick<Owner, "email">): string {
  return `owner-${createHash("sha256").update(owner.email.toLowerCase()).digest("hex").slice(0, 16)}`;
}

/**
 * When an owner's report runs next (BullMQ's repeat strategy, for the owner-reports queue and its
 * worker alike: each works out the next run): at its local time in the owner's zone on the next
 * day it runs (nextReportRun), also on a day whose DST change skips that time. Schedules of
 * another form go by BullMQ's own cron arithmetic.
 */
export function reportRepeatStrategy(millis: number, opts: RepeatOptions): number | undefined {
  const startMs = opts.startDate === undefined ? millis : new Date(opts.startDate).getTime();
  const next =
    opts.pattern && opts.tz
      ? nextReportRun(Math.max(millis, startMs), opts.pattern, opts.tz)
      : undefined;
  return next ?? defaultRepeatStrategy(millis, opts);
}

/** The job id prefix of the run sent for a scheduled run that came due while no worker took it. */
export const DUE_RUN_PREFIX = "report-due-";

/** How a report run is retried. */
const REPORT_RUN_OPTIONS = { attempts: 6, backoff: { type: "exponential", delay: 60_000 } };

/**
 * The run an owner's scheduler has waiting for a worker (its job delayed or waiting, not yet
 * taken): its job id, the time it is scheduled for, and the schedule it was made by (its
 * frequency and zone, which rules changed since may no longer give).
 */
async function waitingRun(
  queue: Queue,
  id: string,
): Promise<
  { jobId: string; at: number; schedule: Pick<Owner, "frequency" | "timezone"> } | undefined
> {
  const scheduler = await queue.getJobScheduler(id);
  const at = Number(scheduler?.next);
  if (!Number.isFinite(at)) return undefined;
  const jobId = `repeat:${id}:${at}`;
  const state = await queue.getJobState(jobId);
  if (state !== "delayed" && state !== "waiting" && state !== "prioritized") return undefined;
  // reportCronPattern's form: its weekday field is * for a daily report.
  const weekday = scheduler?.pattern?.split(" ")[4];
  const timezone = scheduler?.tz;
  if (weekday === undefined || !timezone) return undefined;
  return { jobId, at, schedule: { frequency: weekday === "*" ? "daily" : "weekly", timezone } };
}

/** BullMQ settings of the owner-reports queue and of its worker. */
export const REPORT_QUEUE_SETTINGS = { repeatStrategy: reportRepeatStrategy };

/**
 * Makes the report schedulers match the owners in the rules: one per owner at their local time
 * (reportRepeatStrategy, so DST is handled, with REPORT_QUEUE_SETTINGS on the queue), stale ones
 * removed, with where the owner's last report ended (`forget`): an owner added again later is
 * owed no report of the days they were not one. Safe to run from every worker.
 */
export async function syncReportSchedulers(
  queue: Queue,
  owners: readonly Owner[],
  options: { startDate?: number; forget?: (ownerId: string) => Promise<void> } = {},
): Promise<void> {
  const wanted = new Map(owners.map((owner) => [ownerSchedulerId(owner), owner]));
  for (const [id, owner] of wanted) {
    const waiting = await waitingRun(queue, id);
    await queue.upsertJobScheduler(
      id,
      {
        pattern: reportCronPattern(owner),
        tz: owner.timezone,
        ...(options.startDate !== undefined && { startDate: options.startDate }),
      },
      { name: OWNER_REPORT_JOB, data: { owner: id }, opts: REPORT_RUN_OPTIONS },
    );
    // The upsert replaces the scheduler's waiting run with one at its next time from now. A run
    // that came due while no worker took it (every worker down at the report's time, or one
    // started or reloaded just after it) would be lost, and its period in no report: it goes as a
    // run of its own, one per scheduled time however many workers sync at once (its job id).
    // It covers from the first day its own schedule gave it (rules changed since may make the
    // owner's reports weekly rather than daily, or move their zone) up to the first day the next
    // run covers: the runs due while it waited were never made (a scheduler makes its next run
    // when one is taken), so an outage of days or weeks is in it too (catchUpDates). Not when the
    // next run covers its days from their start (the owner's time moved later that day).
    if (waiting === undefined || waiting.at > Date.now()) continue;
    if (await queue.getJob(waiting.jobId)) continue;
    const next = Number((await queue.getJobScheduler(id))?.next);
    const dates = catchUpDates(
      reportPeriodAt(waiting.schedule, DateTime.fromMillis(waiting.at)),
      Number.isFinite(next) ? reportPeriodAt(owner, DateTime.fromMillis(next)) : undefined,
    );
    if (dates === undefined) continue;
    await queue.add(
      OWNER_REPORT_JOB,
      { owner: id, ...dates },
      { ...REPORT_RUN_OPTIONS, jobId: `${DUE_RUN_PREFIX}${id}-${waiting.at}` },
    );
  }
  for (const scheduler of await queue.getJobSchedulers(0, -1)) {
    if (scheduler.key && !wanted.has(scheduler.key)) {
      await queue.removeJobScheduler(scheduler.key);
      await options.forget?.(scheduler.key);
    }
  }
}

/** Sends one owner's report; throws on a failed send so BullMQ retries it. */
export async function sendOwnerReport(
  sources: ReportSources,
  rules: RuleSet,
  owner: Owner,
  period: ReportPeriod,
  email: DeliveryChannel,
  runId: string,
): Promise<{ id: string; model: ReportModel }> {
  const model = await collectReport(sources, rules, owner.name, period);
  const result = await email.send(reportEmail(model, owner, runId));
  if (!result.ok)
    throw new Error(
      `report to ${ownerSchedulerId(owner)} failed: ${result.error.kind} ${result.error.code}`,
    );
  return { id: result.id, model };
}
