import { escapeHtml } from "../reports/escape-html.js";

/**
 * The overview's chart of pending follow-ups by day: stacked bars per channel as inline SVG
 * (presentation attributes only, so a strict Content-Security-Policy allows it). Every label is
 * escaped; the page carries the same figures as a table for screen readers.
 */

export interface PendingDay {
  /** YYYY-MM-DD. */
  readonly date: string;
  readonly counts: Readonly<Record<string, number>>;
}

/** Colours with at least 3:1 contrast against white, one per channel. */
const COLOURS: Readonly<Record<string, string>> = {
  email: "#1d4ed8",
  sms: "#047857",
  voice: "#b45309",
};

const WIDTH = 720;
const HEIGHT = 200;
const AXIS = 24;

export function pendingChartSvg(days: readonly PendingDay[], channels: readonly string[]): string {
  const totals = days.map((day) => channels.reduce((sum, c) => sum + (day.counts[c] ?? 0), 0));
  const max = Math.max(1, ...totals);
  const slot = (WIDTH - AXIS) / Math.max(1, days.length);
  const bar = Math.max(2, slot * 0.7);
  const plot = HEIGHT - AXIS;
  const rects: string[] = [];
  days.forEach((day, i) => {
    let top = plot;
    for (const channel of channels) {
      const count = day.counts[channel] ?? 0;
      if (count === 0) continue;
      const height = (count / max) * (plot - 8);
      top -= height;
      rects.push(
        `<rect x="${(AXIS + i * slot).toFixed(1)}" y="${top.toFixed(1)}" width="${bar.toFixed(1)}" height="${height.toFixed(1)}" fill="${COLOURS[channel] ?? "#374151"}"><title>${escapeHtml(`${day.date}: ${count} ${channel}`)}</title></rect>`,
      );
    }
  });
  const first = days[0]?.date ?? "";
  const last = days.at(-1)?.date ?? "";
  const legend = channels
    .map(
      (channel, i) =>
        `<rect x="${AXIS + i * 90}" y="${HEIGHT - 12}" width="10" height="10" fill="${COLOURS[channel] ?? "#374151"}"/><text x="${AXIS + i * 90 + 14}" y="${HEIGHT - 3}" font-size="12" fill="#111827">${escapeHtml(channel)}</text>`,
    )
    .join("");
  const label = `Pending follow-ups per day from ${first} to ${last}, at most ${max} on one day`;
  return `<svg class="chart" role="img" aria-label="${escapeHtml(label)}" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}"><text x="0" y="12" font-size="12" fill="#111827">${max}</text><line x1="${AXIS - 2}" y1="${plot}" x2="${WIDTH}" y2="${plot}" stroke="#6b7280"/>${rects.join("")}${legend}<text x="${WIDTH}" y="${HEIGHT - 3}" font-size="12" fill="#111827" text-anchor="end">${escapeHtml(`${first} – ${last}`)}</text></svg>`;
}
