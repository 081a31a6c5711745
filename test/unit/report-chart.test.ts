import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import type { Channel } from "../../src/domain/events.js";
import {
  CHANNEL_COLOURS,
  DAILY_SENDS_CHART_SIZE,
  dailySendsChartLayout,
  renderDailySendsChart,
} from "../../src/reports/daily-sends-chart.js";
import type { DailySends } from "../../src/reports/report-model.js";

const WEEK: DailySends[] = [3, 7, 12, 5, 0, 6, 9].map((email, index) => ({
  date: `2026-11-${16 + index}`,
  byChannel: { email, sms: index % 3 === 0 ? 2 : 0, voice: index === 2 ? 1 : 0 },
}));

/** The 600×200 chart of WEEK, worked out by hand (see "lays the week out"): right and bottom exclusive. */
const PLOT = { left: 28, top: 30, right: 590, bottom: 178 } as const;
const BARS: readonly (readonly [left: number, right: number])[] = [
  [40, 96],
  [120, 176],
  [201, 257],
  [281, 337],
  [361, 417],
  [442, 498],
  [522, 578],
];
/** The axis line's colour (AXIS in daily-sends-chart.ts). */
const AXIS_GREY = "#9ca3af";

function bar(index: number): readonly [left: number, right: number] {
  const found = BARS[index];
  if (found === undefined) throw new Error(`no bar ${index}`);
  return found;
}

function rgbAt(png: PNG, x: number, y: number): string {
  const at = (y * png.width + x) * 4;
  const hex = (n: number | undefined) => (n ?? 0).toString(16).padStart(2, "0");
  return `#${hex(png.data[at])}${hex(png.data[at + 1])}${hex(png.data[at + 2])}`;
}

const channelOf = new Map(Object.entries(CHANNEL_COLOURS).map(([c, hex]) => [hex, c as Channel]));

function channelPixels(png: PNG, x0: number, y0: number, x1: number, y1: number): Set<Channel> {
  const found = new Set<Channel>();
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const channel = channelOf.get(rgbAt(png, x, y));
      if (channel) found.add(channel);
    }
  }
  return found;
}

describe("renderDailySendsChart", () => {
  it("gives the same bytes for the same input", () => {
    expect(renderDailySendsChart(WEEK).equals(renderDailySendsChart(WEEK))).toBe(true);
  });

  it("is a PNG of about 600×200 on a white background", () => {
    const png = PNG.sync.read(renderDailySendsChart(WEEK));
    expect([png.width, png.height]).toEqual([600, 200]);
    expect(DAILY_SENDS_CHART_SIZE).toEqual({ width: 600, height: 200 });
    expect(rgbAt(png, 0, 0)).toBe("#ffffff");
    expect(rgbAt(png, png.width - 1, png.height - 1)).toBe("#ffffff");
  });

  it("lays the week out on the documented geometry", () => {
    // Worked by hand from daily-sends-chart.ts: the tallest day is 13 (12 email + 1 voice), so
    // ticks of 5 up to 15; the widest tick label "15" is 2 glyphs × 4 − 1 = 7 font pixels, 14 at
    // scale 2, so the plot starts at 8 + 14 + 6 = 28 and spans 28–590 × 30–178. Seven slots of
    // 562 / 7 ≈ 80.29 px hold bars floor(0.7 × 80.29) = 56 px wide, centred in their slot.
    expect(dailySendsChartLayout(WEEK)).toEqual({
      width: 600,
      height: 200,
      plot: PLOT,
      axisMax: 15,
      tickStep: 5,
      bars: BARS.map(([left, right]) => ({ left, right })),
    });
  });

  it("draws the tallest bar up to near the top of the plot area", () => {
    const png = PNG.sync.read(renderDailySendsChart(WEEK));
    const [left, right] = bar(2);
    // Wednesday: 12 email fill rows 178 − round(12/15 × 148) = 60 … 177, then 1 voice up to
    // 178 − round(13/15 × 148) = 50; above it, nothing.
    expect(channelPixels(png, left, 30, right, 53).size).toBeGreaterThan(0);
    expect(rgbAt(png, 228, 49)).toBe("#ffffff");
    expect(rgbAt(png, 228, 50)).toBe(CHANNEL_COLOURS.voice);
    expect(rgbAt(png, 228, 59)).toBe(CHANNEL_COLOURS.voice);
    // Stacked: email at the bottom, then SMS and voice above it.
    expect(rgbAt(png, 228, 60)).toBe(CHANNEL_COLOURS.email);
    expect(rgbAt(png, 202, 177)).toBe(CHANNEL_COLOURS.email);
    // The bar covers x 201–256 and no more.
    expect(rgbAt(png, 200, 100)).toBe("#ffffff");
    expect(rgbAt(png, 201, 100)).toBe(CHANNEL_COLOURS.email);
    expect(rgbAt(png, 256, 100)).toBe(CHANNEL_COLOURS.email);
    expect(rgbAt(png, 257, 100)).toBe("#ffffff");
    // The x axis runs under the bars, on row 178.
    expect(rgbAt(png, 228, 178)).toBe(AXIS_GREY);
    // An empty day (Friday, x 361–416) has no bar.
    expect(channelPixels(png, 361, 30, 417, 178).size).toBe(0);
  });

  it("keeps shorter bars proportionally lower", () => {
    const png = PNG.sync.read(renderDailySendsChart(WEEK));
    const topOf = (index: number) => {
      const [left, right] = bar(index);
      const x = Math.floor((left + right) / 2);
      for (let y = PLOT.top; y < PLOT.bottom; y++) {
        if (channelOf.has(rgbAt(png, x, y))) return y;
      }
      return PLOT.bottom;
    };
    // Tops at 178 − round(total / 15 × 148): Monday 5 → 129, Sunday 11 → 69, Wednesday 13 → 50.
    expect(topOf(0)).toBe(129);
    expect(topOf(6)).toBe(69);
    expect(topOf(2)).toBe(50);
    expect(topOf(0)).toBeGreaterThan(topOf(6));
    expect(topOf(6)).toBeGreaterThan(topOf(2));
    // Monday's 2 SMS sit on its 3 emails: email 148–177, SMS 129–147.
    expect(rgbAt(png, 68, 147)).toBe(CHANNEL_COLOURS.sms);
    expect(rgbAt(png, 68, 148)).toBe(CHANNEL_COLOURS.email);
  });

  it("has a legend in each channel's colour above the plot", () => {
    const png = PNG.sync.read(renderDailySendsChart(WEEK));
    expect(channelPixels(png, 0, 0, png.width, PLOT.top)).toEqual(
      new Set(["email", "sms", "voice"]),
    );
    // Right-aligned at x 590: "VOICE" (38 px) at 552, its 10 px swatch at 538; "SMS" (22 px) at
    // 502, swatch at 488; "EMAIL" at 436, swatch at 422; swatches span rows 8–17.
    expect(rgbAt(png, 543, 13)).toBe(CHANNEL_COLOURS.voice);
    expect(rgbAt(png, 493, 13)).toBe(CHANNEL_COLOURS.sms);
    expect(rgbAt(png, 427, 13)).toBe(CHANNEL_COLOURS.email);
    expect(rgbAt(png, 422, 8)).toBe(CHANNEL_COLOURS.email);
    expect(rgbAt(png, 421, 8)).toBe("#ffffff");
    expect(rgbAt(png, 431, 17)).toBe(CHANNEL_COLOURS.email);
    expect(rgbAt(png, 432, 17)).toBe("#ffffff");
  });

  it("still gives a valid image, saying so, when nothing was sent", () => {
    for (const days of [
      [],
      WEEK.map((day) => ({ ...day, byChannel: { email: 0, sms: 0, voice: 0 } })),
    ]) {
      const png = PNG.sync.read(renderDailySendsChart(days));
      expect([png.width, png.height]).toEqual([600, 200]);
      expect(channelPixels(png, 0, 0, png.width, png.height).size).toBe(0);
      // With no data the tick label width falls back to "10": the same 28–590 × 30–178 plot.
      // "NOTHING SENT IN THIS PERIOD" is drawn on rows 99–108, across row 104.
      let ink = 0;
      for (let x = PLOT.left; x < PLOT.right; x++) if (rgbAt(png, x, 104) !== "#ffffff") ink++;
      expect(ink).toBeGreaterThan(20);
      expect(rgbAt(png, 100, 178)).toBe(AXIS_GREY);
    }
  });

  it("honours a size and copes with a long period", () => {
    const year = Array.from({ length: 400 }, (_, index) => ({
      date: new Date(Date.UTC(2026, 0, 1 + index)).toISOString().slice(0, 10),
      byChannel: { email: index % 17, sms: index % 5, voice: 0 },
    }));
    const png = PNG.sync.read(renderDailySendsChart(year, { width: 800, height: 240 }));
    expect([png.width, png.height]).toEqual([800, 240]);
  });
});
