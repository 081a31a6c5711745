import { CHANNELS, type Channel } from "../domain/events.js";
import { plainText } from "../domain/unsafe-text.js";
import { CHANNEL_COLOURS, DAILY_SENDS_CHART_SIZE } from "./daily-sends-chart.js";
import { escapeHtml } from "./escape-html.js";
import { ALERT_NAMES } from "./owner-alert-email.js";
import type { Outcome, OutcomeChange, ReasonCount, ReportModel } from "./report-model.js";
import {
  broughtBackLines,
  capitalise,
  changeWords,
  checkInEffectLines,
  complaintsSentence,
  formatCount,
  localDateTime,
  notableChanges,
  OUTCOME_NAMES,
  optOutLines,
  periodNoun,
  periodTitle,
  shortDate,
  tableOutcomes,
} from "./report-phrases.js";

/**
 * The report's HTML email part, written for what mail clients accept: nested tables for layout,
 * inline styles, no scripts, no web fonts, no remote images; the chart is an inline (cid) image.
 */

export interface ReportHtmlOptions {
  /** Content-ID of the chart PNG attached to the same email; no chart without it. */
  readonly chartCid?: string;
  /** Size the chart was drawn at; defaults to DAILY_SENDS_CHART_SIZE. */
  readonly chartSize?: { readonly width: number; readonly height: number };
}

const FONT = "Arial,Helvetica,sans-serif";
const INK = "#1f2937";
const MUTED = "#6b7280";
const RULE = "#e5e7eb";
const PANEL = "#f9fafb";
const WARN_BG = "#fef3c7";
const WARN_INK = "#92400e";
const CONTENT_WIDTH = 600;

/** The report as a complete HTML document, safe for Gmail and Outlook; every value is escaped. */
export function renderReportHtml(model: ReportModel, options: ReportHtmlOptions = {}): string {
  const noun = periodNoun(model.period);
  const title = `Follow-up report for ${model.shopName}`;
  const body = [
    headerBlock(model),
    keyFigures(model, noun),
    unhappyBlock(model),
    chartBlock(model, options),
    totalsBlock(model, noun),
    reasonsBlock("Why messages failed", model.topFailureReasons, "Nothing failed."),
    reasonsBlock("Why messages were skipped", model.topSkipReasons, "Nothing was skipped."),
    reasonsBlock("Why follow-ups were cancelled", model.topCancelReasons, "Nothing was cancelled."),
    optOutsBlock(model, noun),
    upcomingBlock(model),
    broughtBackBlock(model, noun),
    checkInBlock(model, noun),
    changesBlock(model, noun),
    footerBlock(model),
  ].join("\n");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>${escapeHtml(title)}</title>
</head>
<body style="margin:0;padding:0;background-color:#f3f4f6;">
<div style="display:none;max-height:0;overflow:hidden;mso-hide:all;">${escapeHtml(preheader(model, noun))}</div>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:#f3f4f6;">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="${CONTENT_WIDTH + 48}" cellpadding="0" cellspacing="0" border="0" style="width:100%;max-width:${CONTENT_WIDTH + 48}px;background-color:#ffffff;border:1px solid ${RULE};font-family:${FONT};color:${INK};">
${body}
</table>
</td></tr>
</table>
</body>
</html>
`;
}

/** The line mail clients show next to the subject. */
function preheader(model: ReportModel, noun: string): string {
  const t = model.totals;
  const parts = [`${formatCount(t.sent)} sent`, `${formatCount(t.delivered)} delivered`];
  if (t.failed > 0) parts.push(`${formatCount(t.failed)} failed`);
  if (model.unhappyReplies.length > 0) {
    parts.push(
      `${formatCount(model.unhappyReplies.length)} unhappy ${plural(model.unhappyReplies.length, "reply", "replies")}`,
    );
  }
  return `${parts.join(" · ")} this ${noun}`;
}

function row(content: string, style = "padding:0 24px 24px 24px;"): string {
  return `<tr><td style="${style}">${content}</td></tr>`;
}

function sectionTitle(text: string): string {
  return `<h2 style="margin:0 0 8px 0;font-family:${FONT};font-size:16px;line-height:22px;font-weight:bold;color:${INK};">${escapeHtml(text)}</h2>`;
}

function paragraph(text: string, colour = MUTED): string {
  return `<p style="margin:0;font-family:${FONT};font-size:14px;line-height:20px;color:${colour};">${escapeHtml(text)}</p>`;
}

function headerBlock(model: ReportModel): string {
  return row(
    `<p style="margin:0 0 4px 0;font-family:${FONT};font-size:13px;line-height:18px;color:${MUTED};">Follow-up report</p>` +
      `<h1 style="margin:0 0 4px 0;font-family:${FONT};font-size:22px;line-height:28px;font-weight:bold;color:${INK};">${escapeHtml(model.shopName)}</h1>` +
      `<p style="margin:0 0 12px 0;font-family:${FONT};font-size:14px;line-height:20px;color:${MUTED};">${escapeHtml(periodTitle(model.period))}</p>` +
      paragraph(`${greeting(model.ownerName)} here is what your follow-ups did.`, INK),
    "padding:24px 24px 16px 24px;",
  );
}

const KEY_OUTCOMES: readonly Outcome[] = ["sent", "delivered", "failed", "optout"];

function keyFigures(model: ReportModel, noun: string): string {
  const changeOf = (outcome: Outcome): OutcomeChange | undefined =>
    model.changes.find((change) => change.outcome === outcome);
  const cells = KEY_OUTCOMES.map((outcome) => {
    const change = changeOf(outcome);
    const note = change === undefined ? "" : changeWords(change, noun);
    return (
      `<td width="25%" valign="top" style="width:25%;padding:12px;background-color:${PANEL};border:1px solid ${RULE};">` +
      `<div style="font-family:${FONT};font-size:24px;line-height:30px;font-weight:bold;color:${INK};">${formatCount(model.totals[outcome])}</div>` +
      `<div style="font-family:${FONT};font-size:13px;line-height:18px;color:${INK};">${escapeHtml(capitalise(OUTCOME_NAMES[outcome]))}</div>` +
      `<div style="font-family:${FONT};font-size:12px;line-height:16px;color:${MUTED};">${escapeHtml(note)}</div>` +
      "</td>"
    );
  });
  return row(
    `<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse;"><tr>${cells.join("")}</tr></table>`,
  );
}

function unhappyBlock(model: ReportModel): string {
  const replies = model.unhappyReplies;
  if (replies.length === 0) {
    const of = model.totals.reply > 0 ? ` (${formatCount(model.totals.reply)} replies in all)` : "";
    return row(
      sectionTitle("Replies that look unhappy") + paragraph(`None: no reply needs you${of}.`),
    );
  }
  const items = replies.map((reply) => {
    const about = [
      localDateTime(reply.receivedAt, model.period.timezone),
      reply.orderId === null ? null : ALERT_NAMES.order(reply.orderId),
      reply.customerName === null ? null : plainText(reply.customerName),
      `by ${reply.channel}`,
      reply.resolved ? "resolved" : null,
    ].filter((part): part is string => part !== null && part !== "");
    return (
      `<tr><td style="padding:10px 12px;border-top:1px solid #fde68a;">` +
      `<div style="font-family:${FONT};font-size:13px;line-height:18px;color:${WARN_INK};">${escapeHtml(about.join(" · "))} · <strong>${escapeHtml(reply.why)}</strong></div>` +
      `<div style="font-family:${FONT};font-size:14px;line-height:20px;color:${INK};">“${escapeHtml(plainText(reply.text))}”</div>` +
      "</td></tr>"
    );
  });
  const count = replies.length;
  const lead =
    `${formatCount(count)} ${plural(count, "reply looks", "replies look")} unhappy: you may want to get in touch. ${complaintsSentence(model.complaints)}`.trim();
  return row(
    `<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse;background-color:${WARN_BG};border:1px solid #fcd34d;">` +
      `<tr><td style="padding:12px;font-family:${FONT};font-size:15px;line-height:20px;font-weight:bold;color:${WARN_INK};">${escapeHtml(lead)}</td></tr>` +
      `${items.join("")}</table>`,
  );
}

function chartBlock(model: ReportModel, options: ReportHtmlOptions): string {
  if (options.chartCid === undefined) return "";
  const days = model.dailySends;
  const total = days.reduce(
    (sum, day) => sum + CHANNELS.reduce((inner, c) => inner + (day.byChannel[c] ?? 0), 0),
    0,
  );
  const size = options.chartSize ?? DAILY_SENDS_CHART_SIZE;
  const alt = chartAlt(model, total);
  const present = CHANNELS.filter((c) => days.some((day) => (day.byChannel[c] ?? 0) > 0));
  const legend = present
    .map(
      (c) =>
        `<span style="color:${CHANNEL_COLOURS[c]};">&#9632;</span>&nbsp;${escapeHtml(channelName(c))}`,
    )
    .join("&nbsp;&nbsp;&nbsp;");
  return row(
    sectionTitle("Sent per day") +
      `<img src="cid:${escapeHtml(options.chartCid)}" alt="${escapeHtml(alt)}" width="${size.width}" height="${size.height}" border="0" style="display:block;width:100%;max-width:${size.width}px;height:auto;border:0;outline:none;text-decoration:none;">` +
      (legend === ""
        ? ""
        : `<p style="margin:6px 0 0 0;font-family:${FONT};font-size:12px;line-height:16px;color:${MUTED};">${legend}</p>`),
  );
}

function chartAlt(model: ReportModel, total: number): string {
  if (total === 0) return "Bar chart of messages sent per day: nothing was sent.";
  let peak = model.dailySends[0];
  let peakTotal = -1;
  for (const day of model.dailySends) {
    const dayTotal = CHANNELS.reduce((sum, c) => sum + (day.byChannel[c] ?? 0), 0);
    if (dayTotal > peakTotal) {
      peak = day;
      peakTotal = dayTotal;
    }
  }
  const most =
    peak === undefined ? "" : `, most on ${shortDate(peak.date)} (${formatCount(peakTotal)})`;
  return `Bar chart of messages sent per day by channel: ${formatCount(total)} in all${most}.`;
}

function channelName(channel: Channel): string {
  return channel === "sms" ? "SMS" : capitalise(channel);
}

type Align = "left" | "right";

/** Numbers right-aligned and kept on one line; text left-aligned and free to wrap. */
function cellStyle(align: Align, header: boolean): string {
  const weight = header ? "font-weight:bold;" : "";
  const background = header ? `background-color:${PANEL};` : "";
  const nowrap = align === "right" && !header ? "white-space:nowrap;" : "";
  return `style="padding:6px;border-bottom:1px solid ${RULE};${background}font-family:${FONT};font-size:13px;line-height:18px;${weight}text-align:${align};color:${INK};${nowrap}"`;
}

function dataTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  aligns: readonly Align[],
  totalRow?: readonly string[],
): string {
  const cell = (text: string, column: number, header: boolean, tag: "td" | "th") =>
    `<${tag} ${cellStyle(aligns[column] ?? "right", header)}>${escapeHtml(text)}</${tag}>`;
  const head = `<tr>${headers.map((h, i) => cell(h, i, true, "th")).join("")}</tr>`;
  const body = rows.map((r) => `<tr>${r.map((v, i) => cell(v, i, false, "td")).join("")}</tr>`);
  const total =
    totalRow === undefined
      ? ""
      : `<tr>${totalRow.map((v, i) => cell(v, i, true, "td")).join("")}</tr>`;
  return `<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse;">${head}${body.join("")}${total}</table>`;
}

/** Column headers with soft hyphens, so the table can narrow to fit a phone. */
const COLUMN_HEADERS: Readonly<Record<Outcome, string>> = {
  scheduled: "Sched\u00aduled",
  sent: "Sent",
  delivered: "Deliv\u00adered",
  undelivered: "Un\u00addeliv\u00adered",
  failed: "Failed",
  skipped: "Skipped",
  cancelled: "Can\u00adcelled",
  optout: "Opt-outs",
  reply: "Replies",
};

function totalsBlock(model: ReportModel, noun: string): string {
  const title = sectionTitle("Totals by channel and kind");
  if (model.rows.length === 0) return row(title + paragraph(`No follow-ups in this ${noun}.`));
  const outcomes = tableOutcomes(model);
  const headers = ["Channel", "Kind", ...outcomes.map((o) => COLUMN_HEADERS[o])];
  const rows = model.rows.map((r) => [
    channelName(r.channel),
    r.kind,
    ...outcomes.map((o) => formatCount(r.counts[o])),
  ]);
  const total = ["Total", "", ...outcomes.map((o) => formatCount(model.totals[o]))];
  const aligns: Align[] = ["left", "left", ...outcomes.map((): Align => "right")];
  return row(title + dataTable(headers, rows, aligns, total));
}

function reasonsBlock(title: string, reasons: readonly ReasonCount[], none: string): string {
  if (reasons.length === 0) return row(sectionTitle(title) + paragraph(none));
  const rows = reasons.map((r) => [capitalise(r.words), formatCount(r.count)]);
  return row(sectionTitle(title) + dataTable(["Reason", "Count"], rows, ["left", "right"]));
}

function broughtBackBlock(model: ReportModel, noun: string): string {
  const [first = "", ...rest] = broughtBackLines(model, noun);
  return row(
    sectionTitle("Brought back") +
      paragraph(first, INK) +
      rest.map((line) => paragraph(line)).join(""),
  );
}

function checkInBlock(model: ReportModel, noun: string): string {
  const { checkedIn, notCheckedIn } = model.checkInEffect;
  const lines = checkInEffectLines(model, noun);
  const rate = (r: number | null) => (r === null ? "–" : `${Math.round(r * 100)}%`);
  const table =
    checkedIn.customers + notCheckedIn.customers === 0
      ? ""
      : dataTable(
          ["Group", "Customers", "Bought again", "Rate"],
          [
            ["Got a check-in", ...[checkedIn.customers, checkedIn.cameBack].map(formatCount)],
            [
              "Due one, did not get it",
              ...[notCheckedIn.customers, notCheckedIn.cameBack].map(formatCount),
            ],
          ].map((cells, i) => [...cells, rate(i === 0 ? checkedIn.rate : notCheckedIn.rate)]),
          ["left", "right", "right", "right"],
        );
  return row(
    sectionTitle("Check-ins and repeat purchases") +
      lines.map((line, i) => paragraph(line, i === 0 ? INK : MUTED)).join("") +
      (table === "" ? "" : `<div style="height:8px;line-height:8px;">&nbsp;</div>${table}`),
  );
}

function optOutsBlock(model: ReportModel, noun: string): string {
  const lines = optOutLines(model, noun)
    .map((line) => paragraph(line))
    .join("");
  const channels = CHANNELS.filter((c) => model.optOuts.byChannel[c] > 0);
  if (channels.length === 0) return row(sectionTitle("Opt-outs") + lines);
  const rows = channels.map((c) => [channelName(c), formatCount(model.optOuts.byChannel[c])]);
  return row(
    sectionTitle("Opt-outs") +
      lines +
      `<div style="height:8px;line-height:8px;">&nbsp;</div>` +
      dataTable(["Channel", "Opt-outs"], rows, ["left", "right"]),
  );
}

function upcomingBlock(model: ReportModel): string {
  const { next7Days, next30Days } = model.upcoming;
  const channels = CHANNELS.filter((c) => (next7Days[c] ?? 0) > 0 || (next30Days[c] ?? 0) > 0);
  const title = sectionTitle("Coming up");
  if (channels.length === 0)
    return row(title + paragraph("Nothing is scheduled for the next 30 days."));
  const rows = channels.map((c) => [
    channelName(c),
    formatCount(next7Days[c] ?? 0),
    formatCount(next30Days[c] ?? 0),
  ]);
  const sum = (counts: Readonly<Record<Channel, number>>) =>
    CHANNELS.reduce((s, c) => s + (counts[c] ?? 0), 0);
  const total =
    channels.length > 1
      ? ["Total", formatCount(sum(next7Days)), formatCount(sum(next30Days))]
      : undefined;
  const aligns: Align[] = ["left", "right", "right"];
  return row(title + dataTable(["Channel", "Next 7 days", "Next 30 days"], rows, aligns, total));
}

function changesBlock(model: ReportModel, noun: string): string {
  const changes = notableChanges(model);
  if (changes.length === 0) return "";
  const rows = changes.map((c) => [
    capitalise(OUTCOME_NAMES[c.outcome]),
    formatCount(c.current),
    changeWords(c, noun),
  ]);
  return row(
    sectionTitle(`Compared with the previous ${noun}`) +
      dataTable(["", "Now", "Change"], rows, ["left", "right", "left"]),
  );
}

function footerBlock(model: ReportModel): string {
  return row(
    `<p style="margin:0;font-family:${FONT};font-size:12px;line-height:16px;color:${MUTED};">Times are in ${escapeHtml(model.period.timezone)}. Counts cover ${escapeHtml(periodTitle(model.period))}; “coming up” counts from the end of that period.</p>`,
    `padding:16px 24px 24px 24px;border-top:1px solid ${RULE};`,
  );
}

function greeting(name: string): string {
  return name.trim() === "" ? "Hello," : `Hello ${name.trim()},`;
}

function plural(count: number, one: string, many: string): string {
  return count === 1 ? one : many;
}
