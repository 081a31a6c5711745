import { describe, expect, it } from "vitest";
import {
  renderReportCsv,
  renderReportHtml,
  renderReportJson,
  renderReportText,
} from "../../src/reports/render-report.js";
import type { OutcomeCounts, ReportModel } from "../../src/reports/report-model.js";

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
const counts = (some: Partial<OutcomeCounts>): OutcomeCounts => ({ ...NONE, ...some });

const MODEL: ReportModel = {
  shopName: 'Müller, Söhne & "Co"',
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
    {
      channel: "email",
      kind: "thank-you",
      counts: counts({ scheduled: 30, sent: 28, failed: 2, skipped: 1, optout: 1 }),
    },
    {
      channel: "email",
      kind: "check-in",
      counts: counts({ scheduled: 12, sent: 10, skipped: 2, reply: 6 }),
    },
    {
      channel: "sms",
      kind: "discount",
      counts: counts({ scheduled: 5, sent: 4, delivered: 3, undelivered: 1, cancelled: 1 }),
    },
  ],
  totals: counts({
    scheduled: 47,
    sent: 42,
    delivered: 3,
    undelivered: 1,
    failed: 2,
    skipped: 3,
    cancelled: 1,
    optout: 1,
    reply: 6,
  }),
  changes: [
    { outcome: "sent", current: 42, previous: 36, percent: 16.67 },
    { outcome: "failed", current: 2, previous: 4, percent: -50 },
    { outcome: "optout", current: 1, previous: 0, percent: null },
    { outcome: "cancelled", current: 0, previous: 0, percent: null },
  ],
  topFailureReasons: [
    { code: "permanent 550", words: "the mail server refused the address", count: 2 },
  ],
  topSkipReasons: [
    {
      code: "no-consent",
      words: "the customer had not agreed to receive these messages",
      count: 2,
    },
    { code: "odd, code", words: 'a reason, with "quotes"', count: 1 },
  ],
  topCancelReasons: [{ code: "refunded", words: "the order was refunded", count: 1 }],
  optOuts: { byChannel: { email: 1, sms: 0, voice: 0 } },
  upcoming: {
    next7Days: { email: 12, sms: 3, voice: 0 },
    next30Days: { email: 40, sms: 9, voice: 0 },
  },
  unhappyReplies: [
    {
      receivedAt: "2026-11-17T13:05:00Z",
      orderId: "1042",
      customerName: "Ana <b>Example</b>",
      text: "<script>alert(1)</script> broken & useless \u001b[31mred\u202e, 2/10",
      why: "score 2 of 10; mentions “broken”",
      channel: "sms",
      resolved: true,
      id: "evt-1042/big-ticket.check-in/1",
    },
  ],
  complaints: { byChannel: { sms: 1 }, resolved: 1, medianMinutesToResolve: 125 },
  dailySends: [3, 7, 12, 5, 0, 6, 9].map((email, index) => ({
    date: `2026-11-${16 + index}`,
    byChannel: { email, sms: index % 3 === 0 ? 1 : 0, voice: 0 },
  })),
  broughtBack: {
    orders: 5,
    byCode: 2,
    revenue: [
      { currency: "EUR", amount: "412.50" },
      { currency: "GBP", amount: "89.99" },
    ],
    byRule: [
      { ruleId: "loyal-customer", orders: 3, revenue: [{ currency: "EUR", amount: "300.00" }] },
      {
        ruleId: "accessories",
        orders: 2,
        revenue: [
          { currency: "EUR", amount: "112.50" },
          { currency: "GBP", amount: "89.99" },
        ],
      },
    ],
    byChannelKind: [
      {
        channel: "email",
        kind: "thank-you",
        orders: 3,
        revenue: [{ currency: "EUR", amount: "300.00" }],
      },
      {
        channel: "email",
        kind: "discount",
        orders: 2,
        revenue: [
          { currency: "EUR", amount: "112.50" },
          { currency: "GBP", amount: "89.99" },
        ],
      },
    ],
    redemption: [
      { ruleId: "accessories", sent: 40, redeemed: 6, rate: 0.15 },
      { ruleId: "loyal-customer", sent: 0, redeemed: 1, rate: null },
    ],
  },
  checkInEffect: {
    window: "P30D",
    checkedIn: { customers: 48, cameBack: 9, rate: 0.188 },
    notCheckedIn: {
      customers: 22,
      cameBack: 2,
      rate: 0.091,
      byReason: [
        { code: "no-consent", customers: 15, cameBack: 1 },
        { code: "capped", customers: 7, cameBack: 1 },
      ],
    },
    comparable: true,
    smallestGroup: 20,
    openUntil: "2026-12-23T00:00:00+01:00",
  },
  unreadable: { count: 0 },
};

const EMPTY: ReportModel = {
  ...MODEL,
  rows: [],
  totals: NONE,
  changes: [],
  topFailureReasons: [],
  topSkipReasons: [],
  topCancelReasons: [],
  optOuts: { byChannel: { email: 0, sms: 0, voice: 0 } },
  upcoming: {
    next7Days: { email: 0, sms: 0, voice: 0 },
    next30Days: { email: 0, sms: 0, voice: 0 },
  },
  unhappyReplies: [],
  complaints: { byChannel: {}, resolved: 0, medianMinutesToResolve: null },
  dailySends: [],
  broughtBack: { orders: 0, byCode: 0, revenue: [], byRule: [], byChannelKind: [], redemption: [] },
  checkInEffect: {
    window: "P30D",
    checkedIn: { customers: 0, cameBack: 0, rate: null },
    notCheckedIn: { customers: 0, cameBack: 0, rate: null, byReason: [] },
    comparable: false,
    smallestGroup: 20,
    openUntil: null,
  },
};

/** Text with its line breaks and indents as single spaces, for sentences the renderer wraps. */
const flat = (text: string) => text.replace(/\s+/g, " ");

/** MODEL with other check-in figures. */
function withCheckIns(effect: Partial<ReportModel["checkInEffect"]>): ReportModel {
  return { ...MODEL, checkInEffect: { ...MODEL.checkInEffect, ...effect } };
}

describe("the check-in comparison", () => {
  it("gives both repeat-purchase rates in plain words and compares them", () => {
    const text = flat(renderReportText(MODEL));
    const section = text.slice(text.indexOf("Check-ins and repeat purchases"));
    expect(section).toContain(
      "Of 48 customers who got a check-in in this week, 9 (19%) bought again within 30 days.",
    );
    expect(section).toContain(
      "Of 22 customers due a check-in who did not get one (no consent, message limit reached), 2 (9%) bought again within 30 days.",
    );
    expect(section).toContain(
      "Customers who got a check-in bought again more often than those who did not (19% against 9%).",
    );
    expect(section).toContain("Customers of this week have until Wed 23 Dec 2026 to buy again");
    const closed = renderReportText(withCheckIns({ openUntil: null }));
    expect(closed).not.toContain("may still rise");
  });

  it("says when a group is too small to compare, and when there is no one to compare with", () => {
    const small = flat(
      renderReportText(
        withCheckIns({
          notCheckedIn: {
            customers: 5,
            cameBack: 1,
            rate: 0.2,
            byReason: [{ code: "budget-reached", customers: 5, cameBack: 1 }],
          },
          comparable: false,
        }),
      ),
    );
    expect(small).toContain("(budget spent), 1 (20%) bought again within 30 days.");
    expect(small).toContain("Too few customers to compare yet: each group needs at least 20");
    expect(small).not.toContain("more often than");
    const everyone = renderReportText(
      withCheckIns({
        notCheckedIn: { customers: 0, cameBack: 0, rate: null, byReason: [] },
        comparable: false,
      }),
    );
    expect(everyone).toContain("Every customer due a check-in got one");
    expect(renderReportText(EMPTY)).toContain(
      "No customer was due a check-in in this week, so there is nothing to compare yet.",
    );
  });

  it("shows the two groups as a table in the HTML part", () => {
    const html = renderReportHtml(MODEL);
    expect(html).toContain("Check-ins and repeat purchases");
    expect(html).toMatch(/Got a check-in<\/td>.*?>48<\/td>.*?>9<\/td>.*?>19%<\/td>/);
    expect(html).toMatch(/Due one, did not get it<\/td>.*?>22<\/td>.*?>2<\/td>.*?>9%<\/td>/);
    expect(renderReportHtml(EMPTY)).not.toContain("Got a check-in</td>");
  });

  it("carries the figures in the JSON", () => {
    expect(JSON.parse(renderReportJson(MODEL)).checkInEffect).toEqual(MODEL.checkInEffect);
  });
});

describe("renderReportText", () => {
  const text = renderReportText(MODEL);

  it("says what the follow-ups brought back, per rule, and how many codes were redeemed", () => {
    expect(text).toContain(
      [
        "Brought back",
        "------------",
        "  5 orders came after a follow-up (2 with its discount code), worth 412.50 EUR and 89.99 GBP.",
        "  loyal-customer: 3 orders, 300.00 EUR",
        "  accessories: 2 orders, 112.50 EUR and 89.99 GBP",
        "  accessories codes: 6 redeemed of 40 sent (15%)",
        "  loyal-customer codes: 1 redeemed of 0 sent",
      ].join("\n"),
    );
    expect(renderReportText(EMPTY)).toContain(
      "No purchase in this week came within the attribution window after a follow-up.",
    );
  });

  it("names the shop and the period in the owner's local dates", () => {
    expect(text).toContain('Follow-up report for Müller, Söhne & "Co"');
    expect(text).toContain("Mon 16 Nov – Sun 22 Nov 2026");
    expect(text).toContain("Europe/Berlin");
  });

  it("says how the period compares with the previous one", () => {
    expect(text).toContain("sent 42, up 17% on the previous week (36)");
    expect(text).toContain("failed 2, down 50% on the previous week (4)");
    expect(text).toContain("opt-outs 1, none the previous week");
    expect(text).not.toContain("cancelled 0");
  });

  it("has an aligned totals table by channel and kind with a total row", () => {
    const lines = text.split("\n");
    const header = lines.find((line) => line.trimStart().startsWith("channel  kind"));
    expect(header).toBeDefined();
    for (const column of [
      "scheduled",
      "sent",
      "delivered",
      "undelivered",
      "failed",
      "skipped",
      "cancelled",
    ]) {
      expect(header).toContain(column);
    }
    // Opt-outs are per channel, not per kind: a section of their own.
    expect(header).not.toContain("opt-outs");
    const total = lines.find((line) => line.trimStart().startsWith("total") && line.includes("47"));
    expect(total?.split(/\s+/).filter(Boolean)).toEqual([
      "total",
      "47",
      "42",
      "3",
      "1",
      "2",
      "3",
      "1",
    ]);
    const email = lines.find((line) => line.includes("thank-you"));
    // Numbers right-aligned under their headers.
    expect(email?.length).toBe(header?.length);
  });

  it("lists failure and skip reasons in plain words with counts", () => {
    expect(text).toMatch(/ 2 {2}The mail server refused the address/);
    expect(text).toMatch(/ 2 {2}The customer had not agreed to receive these messages/);
    expect(text).toContain('A reason, with "quotes"');
  });

  it("shows what is coming up by channel", () => {
    expect(text).toMatch(/email\s+12\s+40/);
    expect(text).toMatch(/sms\s+3\s+9/);
    expect(text).toMatch(/total\s+15\s+49/);
  });

  it("shows unhappy replies with local time, order, customer and why, without control characters", () => {
    expect(text).toContain("Tue 17 Nov 14:05 · order 1042 · Ana <b>Example</b>");
    expect(text).toContain("why: score 2 of 10; mentions “broken”");
    expect(text).toContain("broken & useless");
    expect(text).not.toContain("\u001b");
    expect(text).not.toContain("\u202e");
  });

  it("draws a bar per day, longest for the busiest day", () => {
    const bars = text.split("\n").filter((line) => /^ {2}\w{3} \d{1,2} Nov\s+\d+(\s|$)/.test(line));
    expect(bars).toHaveLength(7);
    const longest = bars.reduce((a, b) => (a.length >= b.length ? a : b));
    expect(longest).toContain("Wed 18 Nov  12");
    expect(text).toContain("█ email");
  });

  it("keeps every line within 100 columns and ends with a newline", () => {
    for (const line of text.split("\n")) expect([...line].length).toBeLessThanOrEqual(100);
    expect(text.endsWith("\n")).toBe(true);
  });

  it("wraps a long reply instead of overflowing", () => {
    const long = renderReportText({
      ...MODEL,
      unhappyReplies: MODEL.unhappyReplies.map((reply) => ({
        ...reply,
        text: "kaputt ".repeat(60),
      })),
    });
    const lines = long.split("\n");
    for (const line of lines) expect([...line].length).toBeLessThanOrEqual(100);
    // Wrapped, not cut: every word of the reply is there, over as many lines as it takes.
    expect(long.match(/kaputt/g)).toHaveLength(60);
    expect(lines.filter((line) => line.includes("kaputt")).length).toBeGreaterThanOrEqual(5);
  });

  it("says plainly when there is nothing to report", () => {
    const empty = renderReportText(EMPTY);
    expect(empty).toContain("Nothing happened in this or the previous week.");
    expect(empty).toContain("No follow-ups in this week.");
    expect(empty).toContain("Nothing failed.");
    expect(empty).toContain("Nothing in the next 30 days.");
    expect(empty).toContain("Nothing was sent in this week.");
  });

  it("writes one date for a daily report and both years across new year", () => {
    const daily = renderReportText({
      ...EMPTY,
      period: {
        since: "2026-11-17T00:00:00+01:00",
        until: "2026-11-18T00:00:00+01:00",
        timezone: "Europe/Berlin",
      },
      changes: [{ outcome: "sent", current: 5, previous: 5, percent: 0 }],
    });
    expect(daily).toContain("Tue 17 Nov 2026 (times in Europe/Berlin)");
    expect(daily).toContain("sent 5, same as the previous day");
    const newYear = renderReportText({
      ...EMPTY,
      period: {
        since: "2026-12-28T00:00:00+01:00",
        until: "2027-01-04T00:00:00+01:00",
        timezone: "Europe/Berlin",
      },
    });
    expect(newYear).toContain("Mon 28 Dec 2026 – Sun 3 Jan 2027");
  });

  it("counts a period across a DST change by local days", () => {
    const dst = renderReportText({
      ...EMPTY,
      period: {
        since: "2026-10-19T00:00:00+02:00",
        until: "2026-10-26T00:00:00+01:00",
        timezone: "Europe/Berlin",
      },
      changes: [{ outcome: "sent", current: 2, previous: 1, percent: 100 }],
    });
    expect(dst).toContain("Mon 19 Oct – Sun 25 Oct 2026");
    expect(dst).toContain("up 100% on the previous week");
  });
});

describe("renderReportHtml", () => {
  const html = renderReportHtml(MODEL, { chartCid: "daily-sends@followups" });

  it("is a complete document with the numbers first", () => {
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(html).toContain('<meta charset="utf-8">');
    expect(html.trimEnd().endsWith("</html>")).toBe(true);
    const sent = html.indexOf(">42<");
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThan(html.indexOf("Totals by channel and kind"));
  });

  it("escapes untrusted reply text, names and the shop", () => {
    expect(html).not.toContain("<script");
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt; broken &amp; useless");
    expect(html).toContain("Ana &lt;b&gt;Example&lt;/b&gt;");
    expect(html).toContain("Müller, Söhne &amp; &quot;Co&quot;");
    expect(html).not.toContain("<b>Example");
    expect(html).not.toContain("\u001b");
  });

  it("uses only inline styles and no scripts or remote resources", () => {
    expect(html).not.toMatch(/<(script|style|link|iframe|object|embed|form)\b/i);
    expect(html).not.toMatch(/\s(src|href|background)="(?!cid:)/i);
    expect(html).not.toMatch(/\son\w+=/i);
    expect(html.match(/<table\b/g)?.length).toBe(html.match(/<\/table>/g)?.length);
  });

  it("shows the chart as an inline cid image with size and alt text", () => {
    expect(html).toMatch(
      /<img src="cid:daily-sends@followups" alt="Bar chart of messages sent per day by channel: 45 in all, most on Wed 18 Nov \(12\)\." width="600" height="200"/,
    );
    expect(renderReportHtml(MODEL, {})).not.toContain("<img");
    expect(renderReportHtml(MODEL, { chartCid: 'x"><script>' })).not.toContain('"><script>');
  });

  it("has the reasons, what is coming up and the unhappy replies", () => {
    expect(html).toContain("The mail server refused the address");
    expect(html).toContain("A reason, with &quot;quotes&quot;");
    expect(html).toContain("1 reply looks unhappy");
    expect(html).toContain("Tue 17 Nov 14:05 · order 1042");
    expect(html).toContain("up 17% on the previous week (36)");
    expect(html).toMatch(/Next 30 days/);
  });

  it("renders an empty report without a chart or replies", () => {
    const empty = renderReportHtml(EMPTY, { chartCid: "c" });
    expect(empty).toContain("Nothing failed.");
    expect(empty).toContain("nothing was sent.");
  });
});

/** RFC 4180 reader: quoted fields may hold commas, doubled quotes and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') quoted = true;
    else if (char === ",") {
      row.push(field);
      field = "";
    } else if (char === "\r" && text[i + 1] === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      i++;
    } else field += char;
  }
  if (field !== "" || row.length > 0) rows.push([...row, field]);
  return rows;
}

describe("renderReportCsv", () => {
  const csv = renderReportCsv(MODEL);
  const rows = parseCsv(csv);

  it("has a header row, one row per channel and kind and a total row", () => {
    expect(rows[0]).toEqual([
      "shop",
      "since",
      "until",
      "channel",
      "kind",
      "scheduled",
      "sent",
      "delivered",
      "undelivered",
      "failed",
      "skipped",
      "cancelled",
      "optout",
      "reply",
      "broughtBack",
      "revenue",
      "checkedIn",
      "checkedInBoughtAgain",
      "checkedInRate",
      "notCheckedIn",
      "notCheckedInBoughtAgain",
      "notCheckedInRate",
    ]);
    // One more row: email discounts brought customers back but had nothing else in the period.
    expect(rows).toHaveLength(MODEL.rows.length + 3);
    expect(rows[1]?.slice(3)).toEqual([
      "email",
      "thank-you",
      "30",
      "28",
      "0",
      "0",
      "2",
      "1",
      "0",
      "1",
      "0",
      "3",
      "300.00 EUR",
      ...Array(6).fill(""),
    ]);
    expect(rows.at(-2)?.slice(3)).toEqual([
      "email",
      "discount",
      ...Array(9).fill("0"),
      "2",
      "112.50 EUR; 89.99 GBP",
      ...Array(6).fill(""),
    ]);
    expect(rows.at(-1)?.slice(3)).toEqual([
      "total",
      "",
      "47",
      "42",
      "3",
      "1",
      "2",
      "3",
      "1",
      "1",
      "6",
      "5",
      "412.50 EUR; 89.99 GBP",
      "48",
      "9",
      "0.188",
      "22",
      "2",
      "0.091",
    ]);
  });

  it("quotes a field with a comma and a quote, and it parses back", () => {
    expect(csv).toContain('"Müller, Söhne & ""Co"""');
    expect(rows.slice(1).every((row) => row[0] === 'Müller, Söhne & "Co"')).toBe(true);
    expect(csv.endsWith("\r\n")).toBe(true);
  });

  it("defuses a shop name a spreadsheet would run as a formula", () => {
    const formula = parseCsv(renderReportCsv({ ...MODEL, shopName: "=HYPERLINK(1)" }));
    expect(formula[1]?.[0]).toBe("'=HYPERLINK(1)");
  });
});

describe("renderReportJson", () => {
  it("round-trips and indents by two spaces", () => {
    const json = renderReportJson(MODEL);
    expect(JSON.parse(json)).toEqual(MODEL);
    expect(json).toMatch(/^\{\n {2}"shopName": /);
  });

  it("orders keys the same however the model was built", () => {
    const shuffled = JSON.parse(
      JSON.stringify(MODEL, (_key, value: unknown) =>
        value !== null && typeof value === "object" && !Array.isArray(value)
          ? Object.fromEntries(Object.entries(value).reverse())
          : value,
      ),
    ) as ReportModel;
    expect(renderReportJson(shuffled)).toBe(renderReportJson(MODEL));
  });
});
