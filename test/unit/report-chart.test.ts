import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import type { Channel } from "../../src/domain/events.js";
import {
  CHANNEL_COLOURS,
  DAILY_SENDS_CHART_SIZE,
  type DailySendsChartLayout,
  dailySendsChartLayout,
  renderDailySendsChart,
} from "../../src/reports/daily-sends-chart.js";
import type { DailySends } from "../../src/reports/report-model.js";

const WEEK: DailySends[] = [3, 7, 12, 5, 0, 6, 9].map((email, index) => ({
  date: `2026-11-${16 + index}`,
  byChannel: { email, sms: index % 3 === 0 ? 2 : 0, voice: index === 2 ? 1 : 0 },
}));

function barAt(layout: DailySendsChartLayout, index: number): { left: number; right: number } {
  const bar = layout.bars[index];
  if (bar === undefined) throw new Error(`no bar ${index}`);
  return bar;
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
    expect([png.width, png.height]).toEqual([
      DAILY_SENDS_CHART_SIZE.width,
      DAILY_SENDS_CHART_SIZE.height,
    ]);
    expect(rgbAt(png, 0, 0)).toBe("#ffffff");
    expect(rgbAt(png, png.width - 1, png.height - 1)).toBe("#ffffff");
  });

  it("draws the tallest bar up to near the top of the plot area", () => {
    const png = PNG.sync.read(renderDailySendsChart(WEEK));
    const layout = dailySendsChartLayout(WEEK);
    const bar = barAt(layout, 2);
    const { top, bottom } = layout.plot;
    const nearTop = top + Math.ceil((bottom - top) * 0.15);
    expect(channelPixels(png, bar.left, top, bar.right, nearTop).size).toBeGreaterThan(0);
    // Stacked: email at the bottom, then SMS and voice above it.
    expect(rgbAt(png, bar.left + 1, bottom - 1)).toBe(CHANNEL_COLOURS.email);
    // An empty day has no bar.
    const friday = barAt(layout, 4);
    expect(channelPixels(png, friday.left, top, friday.right, bottom).size).toBe(0);
  });

  it("keeps shorter bars proportionally lower", () => {
    const png = PNG.sync.read(renderDailySendsChart(WEEK));
    const layout = dailySendsChartLayout(WEEK);
    const topOf = (index: number) => {
      const bar = barAt(layout, index);
      const x = Math.floor((bar.left + bar.right) / 2);
      for (let y = layout.plot.top; y < layout.plot.bottom; y++) {
        if (channelOf.has(rgbAt(png, x, y))) return y;
      }
      return layout.plot.bottom;
    };
    expect(topOf(0)).toBeGreaterThan(topOf(6));
    expect(topOf(6)).toBeGreaterThan(topOf(2));
  });

  it("has a legend in each channel's colour above the plot", () => {
    const png = PNG.sync.read(renderDailySendsChart(WEEK));
    const { plot } = dailySendsChartLayout(WEEK);
    expect(channelPixels(png, 0, 0, png.width, plot.top)).toEqual(
      new Set(["email", "sms", "voice"]),
    );
  });

  it("still gives a valid image, saying so, when nothing was sent", () => {
    for (const days of [
      [],
      WEEK.map((day) => ({ ...day, byChannel: { email: 0, sms: 0, voice: 0 } })),
    ]) {
      const png = PNG.sync.read(renderDailySendsChart(days));
      expect(png.width).toBe(DAILY_SENDS_CHART_SIZE.width);
      const { plot } = dailySendsChartLayout(days);
      expect(channelPixels(png, 0, 0, png.width, png.height).size).toBe(0);
      const middle = Math.floor((plot.top + plot.bottom) / 2);
      let ink = 0;
      for (let x = plot.left; x < plot.right; x++) if (rgbAt(png, x, middle) !== "#ffffff") ink++;
      expect(ink).toBeGreaterThan(20);
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
