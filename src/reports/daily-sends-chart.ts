import { PNG } from "pngjs";
import { CHANNELS, type Channel } from "../domain/events.js";
import { PIXEL_FONT_HEIGHT, pixelTextInk, pixelTextWidth } from "./pixel-font.js";
import type { DailySends } from "./report-model.js";

/**
 * The report's bar chart of daily sends, as a PNG small enough to inline in an email: mail
 * clients show images but never run scripts. Stacked bars per day, one colour per channel.
 */

/** One colour per channel, shared by the chart and the HTML legend. */
export const CHANNEL_COLOURS: Readonly<Record<Channel, string>> = {
  email: "#2563eb",
  sms: "#16a34a",
  voice: "#d97706",
};

/** The size the chart is drawn at unless asked otherwise; the HTML uses it for width and height. */
export const DAILY_SENDS_CHART_SIZE = { width: 600, height: 200 } as const;

export interface DailySendsChartOptions {
  readonly width?: number;
  readonly height?: number;
}

/** Where the chart draws: the plot area and each day's bar (right and bottom exclusive). */
export interface DailySendsChartLayout {
  readonly width: number;
  readonly height: number;
  readonly plot: {
    readonly left: number;
    readonly top: number;
    readonly right: number;
    readonly bottom: number;
  };
  /** Largest value on the y axis; 0 when nothing was sent. */
  readonly axisMax: number;
  readonly tickStep: number;
  readonly bars: readonly { readonly left: number; readonly right: number }[];
}

type Rgb = readonly [number, number, number];

const SCALE = 2;
const CHAR_HEIGHT = PIXEL_FONT_HEIGHT * SCALE;
const WHITE: Rgb = [255, 255, 255];
const TEXT: Rgb = [55, 65, 81];
const MUTED: Rgb = [107, 114, 128];
const GRID: Rgb = [229, 231, 235];
const AXIS: Rgb = [156, 163, 175];
const WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"] as const;

/** Geometry of the chart for these days: shared by the renderer and by tests that read pixels. */
export function dailySendsChartLayout(
  days: readonly DailySends[],
  options: DailySendsChartOptions = {},
): DailySendsChartLayout {
  const width = Math.max(200, Math.round(options.width ?? DAILY_SENDS_CHART_SIZE.width));
  const height = Math.max(100, Math.round(options.height ?? DAILY_SENDS_CHART_SIZE.height));
  const max = Math.max(0, ...days.map(dayTotal));
  const tickStep = niceStep(max);
  const axisMax = max === 0 ? 0 : Math.ceil(max / tickStep) * tickStep;
  const labelWidth = scaledWidth(String(Math.max(axisMax, 10)));
  const plot = { left: 8 + labelWidth + 6, top: 30, right: width - 10, bottom: height - 22 };
  const slot = (plot.right - plot.left) / Math.max(days.length, 1);
  const barWidth = Math.max(1, Math.floor(slot * 0.7));
  const bars = days.map((_, index) => {
    const centre = plot.left + slot * (index + 0.5);
    const left = Math.round(centre - barWidth / 2);
    return { left, right: left + barWidth };
  });
  return { width, height, plot, axisMax, tickStep, bars };
}

/** Draws daily sends by channel as a PNG; the same input always gives the same bytes. */
export function renderDailySendsChart(
  days: readonly DailySends[],
  options: DailySendsChartOptions = {},
): Buffer {
  const layout = dailySendsChartLayout(days, options);
  const { plot, axisMax } = layout;
  const canvas = new Canvas(layout.width, layout.height);
  canvas.text("SENT PER DAY", 8, 8, TEXT);
  drawLegend(canvas, days, layout.width - 10);

  if (axisMax === 0) {
    canvas.rect(plot.left, plot.bottom, plot.right, plot.bottom + 1, AXIS);
    const message = "NOTHING SENT IN THIS PERIOD";
    const x = Math.round((plot.left + plot.right - scaledWidth(message)) / 2);
    canvas.text(message, x, Math.round((plot.top + plot.bottom - CHAR_HEIGHT) / 2), MUTED);
    return canvas.png();
  }

  const yOf = (value: number) =>
    plot.bottom - Math.round((value / axisMax) * (plot.bottom - plot.top));
  for (let tick = 0; tick <= axisMax; tick += layout.tickStep) {
    const y = yOf(tick);
    if (tick > 0) canvas.rect(plot.left, y, plot.right, y + 1, GRID);
    const label = String(tick);
    canvas.text(label, plot.left - 6 - scaledWidth(label), y - Math.floor(CHAR_HEIGHT / 2), MUTED);
  }
  days.forEach((day, index) => {
    const bar = layout.bars[index];
    if (bar === undefined) return;
    let below = 0;
    let bottom = plot.bottom;
    for (const channel of CHANNELS) {
      const value = Math.max(0, day.byChannel[channel] ?? 0);
      if (value === 0) continue;
      below += value;
      const top = Math.min(yOf(below), bottom - 1);
      canvas.rect(bar.left, top, bar.right, bottom, hexToRgb(CHANNEL_COLOURS[channel]));
      bottom = top;
    }
  });
  canvas.rect(plot.left, plot.bottom, plot.right, plot.bottom + 1, AXIS);
  drawDayLabels(canvas, days, layout);
  return canvas.png();
}

function drawLegend(canvas: Canvas, days: readonly DailySends[], right: number): void {
  const present = CHANNELS.filter((channel) =>
    days.some((day) => (day.byChannel[channel] ?? 0) > 0),
  );
  let x = right;
  for (const channel of [...present].reverse()) {
    const label = channel.toUpperCase();
    x -= scaledWidth(label);
    canvas.text(label, x, 8, TEXT);
    x -= 4 + CHAR_HEIGHT;
    canvas.rect(x, 8, x + CHAR_HEIGHT, 8 + CHAR_HEIGHT, hexToRgb(CHANNEL_COLOURS[channel]));
    x -= 14;
  }
}

/** Weekday and day under each bar when there is room, else the day of month every few days. */
function drawDayLabels(
  canvas: Canvas,
  days: readonly DailySends[],
  layout: DailySendsChartLayout,
): void {
  const slot = (layout.plot.right - layout.plot.left) / Math.max(days.length, 1);
  const roomy = slot >= scaledWidth("MON 30") + 8;
  const every = roomy ? 1 : Math.max(1, Math.ceil((scaledWidth("30") + 8) / slot));
  days.forEach((day, index) => {
    const bar = layout.bars[index];
    if (bar === undefined || index % every !== 0) return;
    const [year, month, date] = day.date.split("-").map(Number);
    if (year === undefined || month === undefined || date === undefined) return;
    const weekday = WEEKDAYS[new Date(Date.UTC(year, month - 1, date)).getUTCDay()] ?? "";
    const label = roomy ? `${weekday} ${date}` : String(date);
    const x = Math.round((bar.left + bar.right - scaledWidth(label)) / 2);
    canvas.text(label, x, layout.plot.bottom + 8, MUTED);
  });
}

function dayTotal(day: DailySends): number {
  return CHANNELS.reduce((sum, channel) => sum + Math.max(0, day.byChannel[channel] ?? 0), 0);
}

/** 1, 2 or 5 times a power of ten, so the axis has at most four steps up to the maximum. */
function niceStep(max: number): number {
  if (max <= 0) return 1;
  for (let power = 1; ; power *= 10) {
    for (const factor of [1, 2, 5]) {
      const step = factor * power;
      if (Math.ceil(max / step) <= 4) return step;
    }
  }
}

function scaledWidth(text: string): number {
  return pixelTextWidth(text) * SCALE;
}

function hexToRgb(hex: string): Rgb {
  const value = Number.parseInt(hex.slice(1), 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

/** An RGB pixel buffer with the two drawing operations the chart needs. */
class Canvas {
  private readonly image: PNG;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.image = new PNG({ width, height });
    this.rect(0, 0, width, height, WHITE);
  }

  /** Fills [left, right) × [top, bottom), clipped to the canvas. */
  rect(left: number, top: number, right: number, bottom: number, colour: Rgb): void {
    const x0 = Math.max(0, Math.floor(left));
    const x1 = Math.min(this.width, Math.floor(right));
    const y0 = Math.max(0, Math.floor(top));
    const y1 = Math.min(this.height, Math.floor(bottom));
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const at = (y * this.width + x) * 4;
        this.image.data[at] = colour[0];
        this.image.data[at + 1] = colour[1];
        this.image.data[at + 2] = colour[2];
        this.image.data[at + 3] = 255;
      }
    }
  }

  text(text: string, left: number, top: number, colour: Rgb): void {
    for (const [x, y] of pixelTextInk(text)) {
      const px = left + x * SCALE;
      const py = top + y * SCALE;
      this.rect(px, py, px + SCALE, py + SCALE, colour);
    }
  }

  png(): Buffer {
    return PNG.sync.write(this.image, { colorType: 2 });
  }
}
