import { describe, expect, it } from "vitest";
import { renderReportHtml, renderReportText } from "../../src/reports/render-report.js";
import type { ReportModel } from "../../src/reports/report-model.js";
import { reportModelOf } from "../support/report-model.js";

const modelOf = (counts: Record<string, number>) => reportModelOf(counts);

/** 16 skipped and 9 cancelled, each with its reason, as the step scripts count them. */
const COUNTS = {
  "skipped|email|discount|accessories": 10,
  "reason|skipped|email|discount|no-consent": 10,
  "skipped|sms|check-in|big-ticket": 6,
  "reason|skipped|sms|check-in|capped": 6,
  "cancelled|sms|check-in|big-ticket": 9,
  "reason|cancelled|sms|check-in|refunded": 5,
  "reason|cancelled|sms|check-in|operator": 3,
  "reason|cancelled|sms|check-in|erased": 1,
};

const sum = (reasons: ReportModel["topSkipReasons"]) => reasons.reduce((n, r) => n + r.count, 0);

/** A section of the text report, from its heading to the next blank line. */
function section(text: string, heading: string): string {
  const start = text.indexOf(`${heading}\n`);
  expect(start).toBeGreaterThanOrEqual(0);
  const end = text.indexOf("\n\n", start);
  return text.slice(start, end === -1 ? undefined : end);
}

describe("skip and cancel reasons", () => {
  it("lists skip reasons and cancel reasons apart, each adding up to its total", () => {
    const model = modelOf(COUNTS);
    expect(model.totals.skipped).toBe(16);
    expect(model.totals.cancelled).toBe(9);
    expect(model.topSkipReasons.map((r) => r.code)).toEqual(["no-consent", "capped"]);
    expect(sum(model.topSkipReasons)).toBe(16);
    expect(model.topCancelReasons.map((r) => r.code)).toEqual(["refunded", "operator", "erased"]);
    expect(sum(model.topCancelReasons)).toBe(9);
  });

  it("shows them under their own headings in text and HTML", () => {
    const model = modelOf(COUNTS);
    const text = renderReportText(model);
    const skipped = section(text, "Why messages were skipped");
    expect(skipped).toMatch(/ 10 {2}The customer had not agreed/);
    expect(skipped).not.toContain("refunded");
    const cancelled = section(text, "Why follow-ups were cancelled");
    expect(cancelled).toMatch(/ 5 {2}The order was refunded/);
    expect(cancelled).not.toContain("had not agreed");
    expect(renderReportText(modelOf({}))).toContain("Nothing was cancelled.");

    const html = renderReportHtml(model);
    const skipAt = html.indexOf("Why messages were skipped");
    const cancelAt = html.indexOf("Why follow-ups were cancelled");
    expect(skipAt).toBeGreaterThan(0);
    expect(cancelAt).toBeGreaterThan(skipAt);
    expect(html.slice(skipAt, cancelAt)).not.toContain("The order was refunded");
    expect(html.slice(cancelAt)).toContain("The order was refunded");
  });
});
