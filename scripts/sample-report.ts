import { mkdir, writeFile } from "node:fs/promises";
import { DateTime } from "luxon";
import { buildReportModel } from "../src/reports/build-report-model.js";
import { renderDailySendsChart } from "../src/reports/daily-sends-chart.js";
import { renderReportText } from "../src/reports/render-report.js";
import { renderReportHtml } from "../src/reports/render-report-html.js";
import { previousPeriod, reportPeriodAt } from "../src/reports/report-period.js";
import type { LedgerHour } from "../src/store/delivery-ledger.js";

/**
 * `npx tsx scripts/sample-report.ts`: renders the owners' report for a made-up week into docs/,
 * for the README (the same renderers the worker uses; only the figures are invented).
 */
const owner = { frequency: "weekly" as const, timezone: "Europe/London" };
const period = reportPeriodAt(
  owner,
  DateTime.fromISO("2026-11-23T08:00:00", { zone: owner.timezone }),
);
const before = previousPeriod(period);

function week(start: string, scale: number): LedgerHour[] {
  const hours: LedgerHour[] = [];
  const first = DateTime.fromISO(start);
  for (let day = 0; day < 7; day++) {
    const at = first.plus({ days: day, hours: 11 }).toMillis();
    const n = (base: number) => Math.round(base * scale * (1 + ((day * 37) % 5) / 10));
    hours.push({
      start: at,
      counts: new Map([
        ["scheduled|email|thank-you|big-ticket", n(9)],
        ["scheduled|email|thank-you|thank-you", n(14)],
        ["scheduled|sms|check-in|big-ticket", n(8)],
        ["scheduled|email|discount|accessories", n(4)],
        ["sent|email|thank-you|big-ticket", n(8)],
        ["sent|email|thank-you|thank-you", n(13)],
        ["sent|sms|check-in|big-ticket", n(3)],
        ["delivered|sms|check-in|big-ticket", n(3)],
        ["sent|email|discount|accessories", n(2)],
        ["skipped|email|discount|accessories", day % 2],
        ["reason|skipped|email|discount|no-consent", day % 2],
        ["failed|email|thank-you|thank-you", day === 3 ? 2 : 0],
        ["reason|failed|email|thank-you|permanent 550", day === 3 ? 2 : 0],
        ["cancelled|sms|check-in|big-ticket", day === 5 ? 1 : 0],
        ["reason|cancelled|sms|check-in|refunded", day === 5 ? 1 : 0],
        // A text STOP stops texts and calls to the number: counted on both channels.
        ["optout|sms|-|-", day === 2 ? 1 : 0],
        ["optout|voice|-|-", day === 2 ? 1 : 0],
        ["reason|optout|sms|-|sms-stop", day === 2 ? 1 : 0],
        ["reason|optout|voice|-|sms-stop", day === 2 ? 1 : 0],
        ["checkin|sent", n(3)],
        ["checkin-back|sent", day % 3 === 0 ? 1 : 0],
        ["checkin|skipped|no-consent", day % 2],
      ]),
    });
  }
  return hours;
}

const model = buildReportModel({
  shopName: "Corner Electronics",
  ownerName: "Maria",
  period,
  previousPeriod: before,
  hours: week(period.since, 1),
  previousHours: week(before.since, 0.85),
  upcoming: {
    next7Days: { email: 41, sms: 12, voice: 0 },
    next30Days: { email: 96, sms: 47, voice: 0 },
  },
  replies: [
    {
      receivedAt: Date.parse("2026-11-19T17:42:00Z"),
      text: "The TV keeps switching off after 10 minutes, not happy",
      orderId: "ord-100187",
      customerName: "Ana Novak",
    },
    {
      receivedAt: Date.parse("2026-11-20T09:12:00Z"),
      text: "All good, thanks!",
      orderId: "ord-100190",
      customerName: "Tom",
    },
  ],
});
await mkdir("docs", { recursive: true });
await writeFile("docs/report-sample.txt", renderReportText(model));
await writeFile(
  "docs/report-sample.html",
  renderReportHtml(model, { chartCid: "chart" }).replace("cid:chart", "report-chart.png"),
);
await writeFile("docs/report-chart.png", renderDailySendsChart(model.dailySends));
process.stdout.write(
  "wrote docs/report-sample.txt, docs/report-sample.html, docs/report-chart.png\n",
);
