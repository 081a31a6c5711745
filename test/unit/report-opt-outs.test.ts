import { describe, expect, it } from "vitest";
import {
  renderReportCsv,
  renderReportHtml,
  renderReportJson,
  renderReportText,
} from "../../src/reports/render-report.js";
import type { ReportModel } from "../../src/reports/report-model.js";
import { reportModelOf } from "../support/report-model.js";

const modelOf = (counts: Record<string, number>) => reportModelOf(counts);

/** What the ledger holds after one text STOP (customer-feedback.ts): both phone channels. */
const ONE_STOP = {
  "optout|sms|-|-": 1,
  "optout|voice|-|-": 1,
  "reason|optout|sms|-|sms-stop": 1,
  "reason|optout|voice|-|sms-stop": 1,
};
const CHECK_IN_SENT = {
  "scheduled|sms|check-in|big-ticket": 1,
  "sent|sms|check-in|big-ticket": 1,
};

describe("opt-outs in the report", () => {
  it("counts one text STOP once in all, on both phone channels, and in no step-kind row", () => {
    const model = modelOf({ ...CHECK_IN_SENT, ...ONE_STOP });
    expect(model.rows.map((r) => `${r.channel} ${r.kind}`)).toEqual(["sms check-in"]);
    expect(model.rows.every((r) => r.counts.optout === 0)).toBe(true);
    expect(model.totals.optout).toBe(1);
    expect(model.changes.find((c) => c.outcome === "optout")?.current).toBe(1);
    expect(model.optOuts.byChannel).toEqual({ email: 0, sms: 1, voice: 1 });
  });

  it("shows no made-up voice row in text, JSON, CSV or HTML", () => {
    const model = modelOf({ ...CHECK_IN_SENT, ...ONE_STOP });
    const text = renderReportText(model);
    expect(text).not.toMatch(/voice\s+thank-you/);
    expect(text).toContain("opt-outs 1");
    expect(text).not.toContain("opt-outs 2");
    const section = text.slice(text.indexOf("Opt-outs\n"));
    expect(section).toMatch(/^ {2}sms {2,}1$/m);
    expect(section).toMatch(/^ {2}voice {2,}1$/m);
    expect(section).toContain("it counts once here");

    const json = JSON.parse(renderReportJson(model)) as ReportModel;
    expect(json.rows.map((r) => r.channel)).toEqual(["sms"]);
    expect(json.totals.optout).toBe(1);
    expect(json.optOuts.byChannel).toEqual({ email: 0, sms: 1, voice: 1 });

    const csv = renderReportCsv(model).trim().split("\r\n");
    const header = csv[0]?.split(",") ?? [];
    expect(csv.filter((line) => line.includes(",voice,"))).toEqual([]);
    const total = csv.find((line) => line.includes(",total,"))?.split(",") ?? [];
    expect(total[header.indexOf("optout")]).toBe("1");

    const html = renderReportHtml(model);
    expect(html).not.toMatch(/>Voice<\/td>\s*<td[^>]*>thank-you/);
    expect(html).toContain("Opt-outs");
  });

  it("adds up opt-outs of different people and channels, each once", () => {
    const model = modelOf({
      ...ONE_STOP,
      // An email unsubscribe link, and a second STOP from a number whose calls were stopped before.
      "optout|email|-|-": 1,
      "reason|optout|email|-|one-click": 1,
    });
    expect(model.totals.optout).toBe(2);
    const second = modelOf({
      "optout|sms|-|-": 2,
      "optout|voice|-|-": 1,
      "reason|optout|sms|-|sms-stop": 2,
      "reason|optout|voice|-|sms-stop": 1,
    });
    expect(second.totals.optout).toBe(2);
    expect(second.optOuts.byChannel).toEqual({ email: 0, sms: 2, voice: 1 });
  });

  it("says so when no one opted out", () => {
    const text = renderReportText(modelOf(CHECK_IN_SENT));
    expect(text).toContain("No one opted out in this week.");
  });
});
