import { CHANNELS, type Channel } from "../domain/events.js";
import { plainText } from "../domain/unsafe-text.js";
import { ALERT_NAMES } from "./owner-alert-email.js";
import {
  type CheckInCohort,
  type CurrencyAmount,
  type DailySends,
  OUTCOMES,
  type OutcomeCounts,
  type ReasonCount,
  type ReportModel,
} from "./report-model.js";
import {
  broughtBackLines,
  capitalise,
  changeSentence,
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

export { type ReportHtmlOptions, renderReportHtml } from "./render-report-html.js";

/**
 * Renderers of an owner's report model: plain text (email text part and CLI), JSON and CSV for
 * the CLI's other formats. The HTML part lives in render-report-html.ts. All are pure.
 */

const MAX_WIDTH = 100;
const INDENT = "  ";
/** One fill character per channel in the text bars, legible without colour. */
const BAR_FILLS: Readonly<Record<Channel, string>> = { email: "█", sms: "▓", voice: "░" };
const BAR_WIDTH = 60;
const SPARKS = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"] as const;

/** The report as aligned plain text at most 100 columns wide, ending in a newline. */
export function renderReportText(model: ReportModel): string {
  const noun = periodNoun(model.period);
  const sections = [
    textHeader(model),
    glanceSection(model, noun),
    totalsSection(model, noun),
    reasonSection("Why messages failed", model.topFailureReasons, "Nothing failed."),
    reasonSection("Why messages were skipped", model.topSkipReasons, "Nothing was skipped."),
    reasonSection(
      "Why follow-ups were cancelled",
      model.topCancelReasons,
      "Nothing was cancelled.",
    ),
    optOutSection(model, noun),
    upcomingSection(model),
    unhappySection(model),
    broughtBackSection(model, noun),
    checkInSection(model, noun),
    dailySection(model.dailySends, noun),
  ];
  return `${sections.map((lines) => lines.join("\n")).join("\n\n")}\n`;
}

function broughtBackSection(model: ReportModel, noun: string): string[] {
  const lines = broughtBackLines(model, noun).flatMap((line) =>
    wrap(plainText(line), MAX_WIDTH - INDENT.length, INDENT).map((wrapped, index) =>
      index === 0 ? `${INDENT}${wrapped.trimStart()}` : wrapped,
    ),
  );
  return [...heading("Brought back"), ...lines];
}

function checkInSection(model: ReportModel, noun: string): string[] {
  const lines = checkInEffectLines(model, noun).flatMap((line) =>
    wrap(plainText(line), MAX_WIDTH - INDENT.length, INDENT),
  );
  return [...heading("Check-ins and repeat purchases"), ...lines];
}

function heading(title: string): string[] {
  return [title, "-".repeat(width(title))];
}

function textHeader(model: ReportModel): string[] {
  const title = `Follow-up report for ${plainText(model.shopName)}`;
  return [
    ...wrap(title, MAX_WIDTH, ""),
    "=".repeat(Math.min(MAX_WIDTH, width(title))),
    `${periodTitle(model.period)} (times in ${model.period.timezone})`,
  ];
}

function glanceSection(model: ReportModel, noun: string): string[] {
  const changes = notableChanges(model);
  const lines = changes.map((change) => `${INDENT}${changeSentence(change, noun)}`);
  if (lines.length === 0) lines.push(`${INDENT}Nothing happened in this or the previous ${noun}.`);
  return [...heading("At a glance"), ...lines];
}

function totalsSection(model: ReportModel, noun: string): string[] {
  if (model.rows.length === 0) {
    return [...heading("Totals by channel and kind"), `${INDENT}No follow-ups in this ${noun}.`];
  }
  const outcomes = tableOutcomes(model);
  const countsOf = (counts: OutcomeCounts) => outcomes.map((o) => formatCount(counts[o]));
  const body = model.rows.map((row) => [row.channel, row.kind, ...countsOf(row.counts)]);
  const table = alignTable(
    ["channel", "kind", ...outcomes.map((o) => OUTCOME_NAMES[o])],
    [...body, null, ["total", "", ...countsOf(model.totals)]],
    2,
  );
  return [...heading("Totals by channel and kind"), ...table];
}

function reasonSection(title: string, reasons: readonly ReasonCount[], none: string): string[] {
  if (reasons.length === 0) return [...heading(title), `${INDENT}${none}`];
  const countWidth = Math.max(...reasons.map((r) => formatCount(r.count).length));
  const lines = reasons.flatMap((reason) => {
    const count = formatCount(reason.count).padStart(countWidth);
    const hanging = " ".repeat(INDENT.length + countWidth + 2);
    const wrapped = wrap(capitalise(plainText(reason.words)), MAX_WIDTH - hanging.length, hanging);
    return wrapped.map((line, index) =>
      index === 0 ? `${INDENT}${count}  ${line.trimStart()}` : line,
    );
  });
  return [...heading(title), ...lines];
}

function optOutSection(model: ReportModel, noun: string): string[] {
  const lines = optOutLines(model, noun).flatMap((line) =>
    wrap(plainText(line), MAX_WIDTH - INDENT.length, INDENT),
  );
  const channels = CHANNELS.filter((c) => model.optOuts.byChannel[c] > 0);
  if (channels.length === 0) return [...heading("Opt-outs"), ...lines];
  const rows = channels.map((c) => [c, formatCount(model.optOuts.byChannel[c])]);
  return [...heading("Opt-outs"), ...lines, ...alignTable(["channel", "opt-outs"], rows, 1)];
}

function upcomingSection(model: ReportModel): string[] {
  const { next7Days, next30Days } = model.upcoming;
  const channels = CHANNELS.filter((c) => (next7Days[c] ?? 0) > 0 || (next30Days[c] ?? 0) > 0);
  const title = "Coming up (follow-ups already scheduled)";
  if (channels.length === 0) return [...heading(title), `${INDENT}Nothing in the next 30 days.`];
  const sum = (counts: Readonly<Record<Channel, number>>) =>
    CHANNELS.reduce((total, c) => total + (counts[c] ?? 0), 0);
  const rows: (string[] | null)[] = channels.map((c) => [
    c,
    formatCount(next7Days[c] ?? 0),
    formatCount(next30Days[c] ?? 0),
  ]);
  if (channels.length > 1) {
    rows.push(null, ["total", formatCount(sum(next7Days)), formatCount(sum(next30Days))]);
  }
  return [...heading(title), ...alignTable(["channel", "next 7 days", "next 30 days"], rows, 1)];
}

function unhappySection(model: ReportModel): string[] {
  const replies = model.unhappyReplies;
  const of = model.totals.reply > 0 ? ` of ${formatCount(model.totals.reply)} replies` : "";
  const title = `Replies that look unhappy (${formatCount(replies.length)}${of})`;
  if (replies.length === 0) return [...heading(title), `${INDENT}None: no reply needs you.`];
  const lines = replies.flatMap((reply, index) => {
    const who = [
      localDateTime(reply.receivedAt, model.period.timezone),
      reply.orderId === null ? null : ALERT_NAMES.order(reply.orderId),
      reply.customerName === null ? null : plainText(reply.customerName),
      `by ${reply.channel}`,
      reply.resolved ? "resolved" : null,
    ].filter((part) => part !== null && part !== "");
    const deeper = `${INDENT}${INDENT}`;
    return [
      ...(index > 0 ? [""] : []),
      ...wrap(who.join(" · "), MAX_WIDTH - INDENT.length, INDENT),
      ...wrap(`why: ${plainText(reply.why)}`, MAX_WIDTH - deeper.length, deeper),
      ...wrap(`“${plainText(reply.text)}”`, MAX_WIDTH - deeper.length, deeper),
    ];
  });
  const summary = complaintsSentence(model.complaints);
  return [
    ...heading(title),
    ...(summary ? [...wrap(summary, MAX_WIDTH - INDENT.length, INDENT), ""] : []),
    ...lines,
  ];
}

function dailySection(days: readonly DailySends[], noun: string): string[] {
  const totals = days.map(dayTotal);
  const max = Math.max(0, ...totals);
  if (max === 0) return [...heading("Sent per day"), `${INDENT}Nothing was sent in this ${noun}.`];
  const present = CHANNELS.filter((c) => days.some((day) => (day.byChannel[c] ?? 0) > 0));
  const legend = `${INDENT}${present.map((c) => `${BAR_FILLS[c]} ${c}`).join("   ")}`;
  if (days.length > 31) return [...heading("Sent per day"), ...sparkline(days, totals, max)];
  const countWidth = formatCount(max).length;
  const lines = days.map((day, index) => {
    const label = shortDate(day.date).padEnd(10);
    const count = formatCount(totals[index] ?? 0).padStart(countWidth);
    return `${INDENT}${label}  ${count}  ${stackedBar(day, max)}`.trimEnd();
  });
  return [...heading("Sent per day"), legend, ...lines];
}

/** One bar of BAR_WIDTH at the day with most sends, channels stacked left to right. */
function stackedBar(day: DailySends, max: number): string {
  let bar = "";
  let cumulative = 0;
  for (const channel of CHANNELS) {
    const value = Math.max(0, day.byChannel[channel] ?? 0);
    if (value === 0) continue;
    const before = Math.round((cumulative / max) * BAR_WIDTH);
    cumulative += value;
    const after = Math.max(Math.round((cumulative / max) * BAR_WIDTH), before + 1);
    bar += BAR_FILLS[channel].repeat(after - before);
  }
  return bar;
}

/** Long periods: one spark per day, 60 days a line, each line labelled with its first day. */
function sparkline(days: readonly DailySends[], totals: readonly number[], max: number): string[] {
  const lines: string[] = [];
  for (let start = 0; start < days.length; start += 60) {
    const sparks = totals
      .slice(start, start + 60)
      .map((total) => (total === 0 ? " " : (SPARKS[Math.ceil((total / max) * 8) - 1] ?? "█")))
      .join("");
    lines.push(`${INDENT}${shortDate(days[start]?.date ?? "").padEnd(10)}  ${sparks}`.trimEnd());
  }
  const peak = totals.indexOf(max);
  lines.push(`${INDENT}(most: ${formatCount(max)} on ${shortDate(days[peak]?.date ?? "")})`);
  return lines;
}

function dayTotal(day: DailySends): number {
  return CHANNELS.reduce((sum, channel) => sum + Math.max(0, day.byChannel[channel] ?? 0), 0);
}

/**
 * Columns padded to their widest cell: the first `textColumns` left-aligned, the rest (numbers)
 * right-aligned; `null` rows become rules. Gaps shrink to one space if two would pass 100 columns.
 */
function alignTable(
  headers: readonly string[],
  rows: readonly (readonly string[] | null)[],
  textColumns: number,
): string[] {
  const widths = headers.map((header, column) =>
    Math.max(width(header), ...rows.map((row) => width(row?.[column] ?? ""))),
  );
  const total = (gap: number) =>
    INDENT.length + widths.reduce((sum, w) => sum + w, 0) + gap * (widths.length - 1);
  const gap = " ".repeat(total(2) <= MAX_WIDTH ? 2 : 1);
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => {
        const w = widths[column] ?? 0;
        return column < textColumns ? padEnd(cell, w) : padStart(cell, w);
      })
      .join(gap)
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join(gap);
  return [line(headers), rule, ...rows.map((row) => (row === null ? rule : line(row)))].map(
    (text) => `${INDENT}${text}`,
  );
}

function width(text: string): number {
  return [...text].length;
}

function padEnd(text: string, to: number): string {
  return text + " ".repeat(Math.max(0, to - width(text)));
}

function padStart(text: string, to: number): string {
  return " ".repeat(Math.max(0, to - width(text))) + text;
}

/** Word-wraps to `limit` columns (breaking words longer than that), each line prefixed. */
function wrap(text: string, limit: number, prefix: string): string[] {
  const lines: string[] = [];
  let current = "";
  for (const word of text.split(" ").filter((w) => w !== "")) {
    const pieces = [...word];
    for (let at = 0; at < pieces.length; at += limit) {
      const piece = pieces.slice(at, at + limit).join("");
      if (current === "") current = piece;
      else if (width(current) + 1 + width(piece) <= limit) current += ` ${piece}`;
      else {
        lines.push(current);
        current = piece;
      }
    }
  }
  if (current !== "" || lines.length === 0) lines.push(current);
  return lines.map((line) => `${prefix}${line}`);
}

/** Keys in the order the model declares them; anything unknown follows alphabetically. */
const KEY_ORDER = [
  "shopName",
  "ownerName",
  "period",
  "previousPeriod",
  "since",
  "until",
  "timezone",
  "rows",
  "channel",
  "kind",
  "counts",
  ...OUTCOMES,
  "totals",
  "changes",
  "outcome",
  "current",
  "previous",
  "percent",
  "topFailureReasons",
  "topSkipReasons",
  "topCancelReasons",
  "code",
  "words",
  "count",
  "upcoming",
  "next7Days",
  "next30Days",
  ...CHANNELS,
  "unhappyReplies",
  "receivedAt",
  "orderId",
  "customerName",
  "text",
  "why",
  "dailySends",
  "date",
  "byChannel",
];
const KEY_RANK = new Map(KEY_ORDER.map((key, index) => [key, index]));

/** The model as JSON with a stable key order and two-space indent, ending in a newline. */
export function renderReportJson(model: ReportModel): string {
  return `${JSON.stringify(inStableOrder(model), null, 2)}\n`;
}

function inStableOrder(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(inStableOrder);
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value).sort(([a], [b]) => {
    const rankA = KEY_RANK.get(a) ?? Number.MAX_SAFE_INTEGER;
    const rankB = KEY_RANK.get(b) ?? Number.MAX_SAFE_INTEGER;
    return rankA - rankB || (a < b ? -1 : a > b ? 1 : 0);
  });
  return Object.fromEntries(entries.map(([key, inner]) => [key, inStableOrder(inner)]));
}

/**
 * One CSV row per channel and kind plus a `total` row, every outcome a column (opt-outs, per
 * channel and not per kind, on the `total` row only), then the orders the
 * follow-ups brought back and their revenue (`110.00 GBP; 30.00 EUR`), then (on the `total` row
 * only) the check-in comparison: customers checked in and how many bought again, customers due a
 * check-in who did not get it and how many bought again, and both rates. Each row names the shop
 * and period so exports from several reports can be pasted together. RFC 4180: CRLF line ends,
 * fields quoted when they hold a comma, quote or line break.
 */
export function renderReportCsv(model: ReportModel): string {
  const header = [
    "shop",
    "since",
    "until",
    "channel",
    "kind",
    ...OUTCOMES,
    "broughtBack",
    "revenue",
    "checkedIn",
    "checkedInBoughtAgain",
    "checkedInRate",
    "notCheckedIn",
    "notCheckedInBoughtAgain",
    "notCheckedInRate",
  ];
  const lead = [model.shopName, model.period.since, model.period.until];
  const counts = (c: OutcomeCounts) => OUTCOMES.map((outcome) => String(c[outcome]));
  const back = model.broughtBack;
  const revenue = (amounts: readonly CurrencyAmount[]) =>
    amounts.map((a) => `${a.amount} ${a.currency}`).join("; ");
  const broughtBackOf = (channel: string, kind: string) => {
    const found = back.byChannelKind.find((b) => b.channel === channel && b.kind === kind);
    return [String(found?.orders ?? 0), revenue(found?.revenue ?? [])];
  };
  // A follow-up that brought a customer back may have had nothing else happen in the period.
  const onlyBack = back.byChannelKind.filter(
    (b) => !model.rows.some((row) => row.channel === b.channel && row.kind === b.kind),
  );
  const zero = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as OutcomeCounts;
  const { checkedIn, notCheckedIn } = model.checkInEffect;
  const cohort = (c: CheckInCohort) => [
    String(c.customers),
    String(c.cameBack),
    c.rate === null ? "" : String(c.rate),
  ];
  const noComparison = ["", "", "", "", "", ""];
  const rows = [
    header,
    ...model.rows.map((row) => [
      ...lead,
      row.channel,
      row.kind,
      ...counts(row.counts),
      ...broughtBackOf(row.channel, row.kind),
      ...noComparison,
    ]),
    ...onlyBack.map((b) => [
      ...lead,
      b.channel,
      b.kind,
      ...counts(zero),
      ...broughtBackOf(b.channel, b.kind),
      ...noComparison,
    ]),
    [
      ...lead,
      "total",
      "",
      ...counts(model.totals),
      String(back.orders),
      revenue(back.revenue),
      ...cohort(checkedIn),
      ...cohort(notCheckedIn),
    ],
  ];
  return rows
    .map((row) => row.map(csvField).join(","))
    .join("\r\n")
    .concat("\r\n");
}

function csvField(value: string): string {
  // A leading =, +, - or @ would make a spreadsheet run the cell as a formula.
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
