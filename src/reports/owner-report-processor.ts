import { randomUUID } from "node:crypto";
import { DelayedError, type Job, UnrecoverableError } from "bullmq";
import { DateTime } from "luxon";
import type { DeliveryChannel } from "../channels/channel.js";
import type { Owner, RuleSet } from "../domain/rules.js";
import type { Logger } from "../logger.js";
import type { FollowUpMetrics } from "../metrics.js";
import type { ReportMarks } from "../store/report-marks.js";
import {
  DUE_RUN_PREFIX,
  ownerSchedulerId,
  type ReportSources,
  sendOwnerReport,
} from "./owner-reports.js";
import type { ReportPeriod } from "./report-model.js";
import {
  catchUpDates,
  datesSinceMark,
  namedPeriodProblem,
  periodFromDates,
  reportPeriodAt,
} from "./report-period.js";

export interface OwnerReportDeps {
  readonly rules: () => RuleSet;
  readonly sources: ReportSources;
  readonly email: DeliveryChannel;
  readonly metrics: FollowUpMetrics;
  readonly logger: Logger;
  /** When an owner's scheduler (by id) runs next, as BullMQ set it; for a run taken late. */
  readonly nextRun?: (schedulerId: string) => Promise<number | undefined>;
  /** Per owner, up to which day the reports sent cover: a scheduled run covers from there. */
  readonly marks: Pick<ReportMarks, "claim" | "finish">;
  /** How long a scheduled run holds the owner's reports while sending; REPORT_LEASE_MS by default. */
  readonly leaseMs?: number;
}

/**
 * How long a scheduled report run holds an owner's reports (their mark) while it works out and
 * sends the report: well beyond reading a long period and an SMTP send's timeouts, so that the
 * lease does not run out under a slow send, and short enough that a worker that died holding it
 * delays the report by minutes.
 */
export const REPORT_LEASE_MS = 300_000;
/** At most this long a run that found another sending the owner's report waits to look again. */
const LEASE_RETRY_MAX_MS = 2_000;
/** At least this long, so that a run does not spin while the holder finishes. */
const LEASE_RETRY_MIN_MS = 250;

/** What a report job returns: the message id, or why nothing was sent. */
export type OwnerReportResult = { readonly id: string } | { readonly skipped: string };

/**
 * Processes one run of the `owner-reports` queue: works out the period, sends the report, and
 * throws on a failed send so BullMQ retries it (with the scheduler's backoff).
 */
export function createOwnerReportProcessor(deps: OwnerReportDeps) {
  const send = async (
    job: Job,
    owner: Owner,
    rules: RuleSet,
    period: ReportPeriod,
  ): Promise<OwnerReportResult> => {
    let sent: Awaited<ReturnType<typeof sendOwnerReport>>;
    try {
      sent = await sendOwnerReport(
        deps.sources,
        rules,
        owner,
        period,
        deps.email,
        `report-${job.data.owner}-${Date.parse(period.since)}`,
      );
    } catch (error) {
      deps.metrics.reportsFailed.inc();
      deps.logger.warn(
        { owner: job.data.owner, err: error, attempt: job.attemptsMade + 1 },
        "owner report failed; will retry",
      );
      throw error;
    }
    deps.metrics.reportsSent.inc();
    deps.logger.info(
      { owner: job.data.owner, since: period.since, until: period.until },
      "owner report sent",
    );
    return { id: sent.id };
  };

  return async (job: Job, token?: string): Promise<OwnerReportResult> => {
    const rules = deps.rules();
    const owner = rules.owners.find((o) => ownerSchedulerId(o) === job.data.owner);
    if (!owner) return { skipped: "owner no longer in the rules" };
    // A run added by hand may name its period; a scheduled run covers the days before the moment
    // it was scheduled for, even when it is processed late (after an outage, or on a retry). That
    // moment is the job's creation and the delay it was made with: its scheduler makes it when
    // the run before starts, and BullMQ sets `job.delay` to 0 once it is due (and to the backoff
    // on a retry), so the creation time with `job.delay` is the run before's.
    const { since, until } = job.data as { since?: unknown; until?: unknown };
    const named = since !== undefined || until !== undefined;
    // A period that cannot be reported fails the run at once: no retry would change it. A run
    // that names one end only is such a run, not a scheduled one.
    const problem = named ? namedPeriodProblem(since, until) : undefined;
    if (problem) {
      deps.metrics.reportsFailed.inc();
      deps.logger.warn(
        { owner: job.data.owner, since, until, problem },
        "owner report run names a period that cannot be reported; not retried",
      );
      const end = (value: unknown) => (value === undefined ? "(none)" : String(value));
      throw new UnrecoverableError(`report period ${end(since)} to ${end(until)}: ${problem}`);
    }
    let period = named
      ? periodFromDates(job.data.since, job.data.until, owner.timezone)
      : reportPeriodAt(owner, DateTime.fromMillis(job.timestamp + (job.opts.delay ?? 0)));
    // A scheduled run taken late (a worker that stayed up while Redis was unreachable or refused
    // writes for days) made its scheduler's next run at its next time from now, never the runs
    // due meanwhile: it covers their days too, up to the first day that next run covers
    // (catchUpDates, as a run due at start-up does). Worked out at its first take only (a retry
    // or a stalled run taken again may see a later next run, whose days were reported), and
    // kept in its data, so that a retry covers the same days.
    if (!named && job.repeatJobKey && job.attemptsStarted <= 1 && deps.nextRun) {
      const next = await deps.nextRun(job.repeatJobKey);
      const dates =
        next !== undefined && Number.isFinite(next)
          ? catchUpDates(period, reportPeriodAt(owner, DateTime.fromMillis(next)))
          : undefined;
      const stretched = dates && periodFromDates(dates.since, dates.until, owner.timezone);
      if (stretched && Date.parse(stretched.until) > Date.parse(period.until)) {
        await job.updateData({ ...job.data, ...dates });
        period = stretched;
      }
    }
    // A scheduled run (its scheduler's, or the one sent for a run that came due while no worker
    // took it; not one added by hand) covers the days since the last report this owner got, up
    // to its own end: the owner's weekday, frequency or zone may have changed since, and a run
    // dropped after its last attempt failed left its days to this one. None when they were all
    // reported (a run taken twice, its first sent). With no mark yet, its own period.
    const scheduled = Boolean(job.repeatJobKey) || String(job.id ?? "").startsWith(DUE_RUN_PREFIX);
    if (!scheduled) return send(job, owner, rules, period);
    // One scheduled run of an owner at a time reads the mark, sends and moves it: a stalled run
    // taken again while its first attempt is still sending (or the run sent for one no worker
    // took, beside its scheduler's) would read the same mark and send the same days. The other
    // moves itself to look again shortly, and then covers only the days since.
    const ownerId = String(job.data.owner);
    const lease = randomUUID();
    const claimed = await deps.marks.claim(
      ownerId,
      lease,
      deps.leaseMs ?? REPORT_LEASE_MS,
      period.since.slice(0, 10),
    );
    if (!claimed.claimed) {
      const wait = Math.min(Math.max(claimed.heldForMs, LEASE_RETRY_MIN_MS), LEASE_RETRY_MAX_MS);
      deps.logger.info(
        { owner: ownerId, jobId: job.id },
        "another run is sending the owner's report; will look again",
      );
      await job.moveToDelayed(Date.now() + wait, token);
      throw new DelayedError("the owner's report is being sent by another run");
    }
    let sentUntil: string | undefined;
    try {
      const dates = datesSinceMark(period, claimed.mark);
      if (!dates) {
        deps.logger.info(
          { owner: ownerId, until: period.until },
          "owner report run's days were reported already; nothing sent",
        );
        return { skipped: "its days were reported already" };
      }
      const covered = periodFromDates(dates.since, dates.until, owner.timezone);
      const result = await send(job, owner, rules, covered);
      sentUntil = covered.until.slice(0, 10);
      return result;
    } finally {
      // Recorded as the report is: the next run covers from its end. A failure here is not the
      // send's (a retry would send the report again): the next run covers its days again.
      await deps.marks.finish(ownerId, lease, sentUntil).then(
        (held) => {
          if (!held)
            deps.logger.warn(
              { owner: ownerId, jobId: job.id },
              "owner report run outlived its lease: another run may have sent the same days",
            );
        },
        (error: unknown) =>
          deps.logger.warn(
            { owner: ownerId, err: error },
            sentUntil === undefined
              ? "owner report run's lease not given back; it runs out on its own"
              : "owner report sent, but not recorded as sent; the next report covers its days again",
          ),
      );
    }
  };
}
