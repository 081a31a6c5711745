import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type ParsedMail, simpleParser } from "mailparser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeliveryChannel, EmailMessage } from "../../src/channels/channel.js";
import { createSmtpEmailChannel } from "../../src/channels/email-smtp.js";
import { createOutboxChannel } from "../../src/channels/outbox.js";
import { renderDailySendsChart } from "../../src/reports/daily-sends-chart.js";
import { renderReportHtml, renderReportText } from "../../src/reports/render-report.js";
import type { OutcomeCounts, ReportModel } from "../../src/reports/report-model.js";
import { type SmtpSink, startSmtpSink } from "../support/smtp-sink.js";

const FROM = '"Corner Shop" <hello@shop.example>';
const CID = "daily-sends@followups";

const NONE: OutcomeCounts = {
  scheduled: 0,
  sent: 0,
  delivered: 0,
  undelivered: 0,
  failed: 0,
  skipped: 0,
  cancelled: 0,
  optout: 0,
  reply: 0,
};

const MODEL: ReportModel = {
  shopName: "Corner Shop",
  ownerName: "Ana",
  period: {
    since: "2026-11-16T00:00:00+01:00",
    until: "2026-11-23T00:00:00+01:00",
    timezone: "Europe/Berlin",
  },
  previousPeriod: {
    since: "2026-11-09T00:00:00+01:00",
    until: "2026-11-16T00:00:00+01:00",
    timezone: "Europe/Berlin",
  },
  rows: [
    { channel: "email", kind: "thank-you", counts: { ...NONE, scheduled: 9, sent: 8, failed: 1 } },
  ],
  totals: { ...NONE, scheduled: 9, sent: 8, failed: 1 },
  changes: [{ outcome: "sent", current: 8, previous: 4, percent: 100 }],
  topFailureReasons: [
    { code: "permanent 550", words: "the mail server refused the address", count: 1 },
  ],
  topSkipReasons: [],
  topCancelReasons: [],
  optOuts: { byChannel: { email: 0, sms: 0, voice: 0 } },
  upcoming: {
    next7Days: { email: 2, sms: 0, voice: 0 },
    next30Days: { email: 5, sms: 0, voice: 0 },
  },
  unhappyReplies: [],
  complaints: { byChannel: {}, resolved: 0, medianMinutesToResolve: null },
  dailySends: [1, 2, 0, 3, 0, 1, 1].map((email, index) => ({
    date: `2026-11-${16 + index}`,
    byChannel: { email, sms: 0, voice: 0 },
  })),
  broughtBack: { orders: 0, byCode: 0, revenue: [], byRule: [], byChannelKind: [], redemption: [] },
  checkInEffect: {
    window: "P30D",
    checkedIn: { customers: 0, cameBack: 0, rate: null },
    notCheckedIn: { customers: 0, cameBack: 0, rate: null, byReason: [] },
    comparable: false,
    smallestGroup: 20,
    openUntil: null,
  },
  unreadable: { count: 0 },
};

function reportMessage(followUpId: string): { message: EmailMessage; chart: Buffer } {
  const chart = renderDailySendsChart(MODEL.dailySends);
  const message: EmailMessage = {
    channel: "email",
    followUpId,
    to: "owner@shop.example",
    subject: "Corner Shop follow-ups: 16 – 22 Nov 2026",
    text: renderReportText(MODEL),
    html: renderReportHtml(MODEL, { chartCid: CID }),
    attachments: [
      { filename: "daily-sends.png", contentType: "image/png", content: chart, cid: CID },
    ],
  };
  return { message, chart };
}

/** What every transport must deliver: the HTML referencing an inline, related PNG by its cid. */
async function expectInlineChart(raw: string, parsed: ParsedMail, chart: Buffer): Promise<void> {
  expect(raw).toMatch(/Content-Type: multipart\/related; type="text\/html"/i);
  expect(raw).toMatch(new RegExp(`^Content-Id: <${CID}>`, "im"));
  expect(parsed.attachments).toHaveLength(1);
  const [image] = parsed.attachments;
  expect(image?.cid).toBe(CID);
  expect(image?.related).toBe(true);
  expect(image?.contentType).toBe("image/png");
  expect(image?.contentDisposition).toBe("inline");
  expect(image?.content.equals(chart)).toBe(true);
  const withLinks = await simpleParser(raw, { keepCidLinks: true });
  expect(withLinks.html).toContain(`src="cid:${CID}"`);
  expect(parsed.text?.trimEnd()).toBe(renderReportText(MODEL).trimEnd());
}

describe("report email with an inline chart", () => {
  let sink: SmtpSink;
  let smtp: DeliveryChannel;
  let outboxDir: string;
  let outbox: DeliveryChannel;

  beforeAll(async () => {
    sink = await startSmtpSink();
    smtp = createSmtpEmailChannel({ smtpUrl: sink.url, from: FROM, timeoutMs: 2_000 });
    outboxDir = await mkdtemp(path.join(tmpdir(), "report-email-"));
    outbox = createOutboxChannel({ dir: outboxDir, from: FROM });
  });

  afterAll(async () => {
    await smtp.close();
    await outbox.close();
    await sink.close();
    await rm(outboxDir, { recursive: true, force: true });
  });

  it("arrives over SMTP with the chart as a related image part the HTML references", async () => {
    const { message, chart } = reportMessage("report.smtp");
    const result = await smtp.send(message);
    expect(result.ok).toBe(true);
    const [received] = await sink.waitForMessages(1);
    if (received === undefined) throw new Error("no message arrived");
    expect(received.parsed.subject).toBe(message.subject);
    await expectInlineChart(received.raw, received.parsed, chart);
  });

  it("is written by the outbox with the same inline chart", async () => {
    const { message, chart } = reportMessage("report.outbox");
    const result = await outbox.send(message);
    if (!result.ok) throw new Error(result.error.reason);
    const raw = await readFile(path.join(outboxDir, result.id), "utf8");
    await expectInlineChart(raw, await simpleParser(raw), chart);
  });
});
