import { buildReportModel, type ReportInput } from "../../src/reports/build-report-model.js";
import type { ReportModel } from "../../src/reports/report-model.js";

/** A week in London, the period the report tests read. */
export const REPORT_WEEK: ReportInput["period"] = {
  since: "2026-11-16T00:00:00+00:00",
  until: "2026-11-23T00:00:00+00:00",
  timezone: "Europe/London",
};

/**
 * The report of a period whose ledger holds `counts` in one hour (17 November, 10:00 UTC), with
 * nothing the period before, nothing upcoming and no replies unless given.
 */
export function reportModelOf(
  counts: Record<string, number>,
  options: {
    readonly period?: ReportInput["period"];
    readonly attribution?: ReportInput["attribution"];
    readonly replies?: ReportInput["replies"];
  } = {},
): ReportModel {
  const period = options.period ?? REPORT_WEEK;
  return buildReportModel({
    shopName: "Corner Electronics",
    ownerName: "Maria",
    period,
    previousPeriod: period,
    hours: [{ start: Date.parse("2026-11-17T10:00:00Z"), counts: new Map(Object.entries(counts)) }],
    previousHours: [],
    upcoming: {
      next7Days: { email: 0, sms: 0, voice: 0 },
      next30Days: { email: 0, sms: 0, voice: 0 },
    },
    replies: options.replies ?? [],
    ...(options.attribution && { attribution: options.attribution }),
  });
}
