import { DateTime } from "luxon";

/** Pending follow-ups as counted (store/delivery-ledger.ts `PendingCount`). */
export interface CountedPending {
  readonly channel: string;
  readonly ruleId: string | null;
  /** Start of the quarter hour they fall due in (epoch ms). */
  readonly at: number;
  readonly count: number;
}

/** One line of `followups schedule --json`. */
export interface ScheduleDay {
  /** Local date (YYYY-MM-DD) in the zone asked for. */
  readonly date: string;
  readonly channel: string;
  /** null for follow-ups planned before rules were counted (2026-12-02). */
  readonly ruleId: string | null;
  readonly count: number;
}

/**
 * Pending follow-ups by local due date, channel and rule, for `days` local days from the day
 * `now` falls on in `zone`; sorted by date, channel, rule.
 */
export function scheduleByDay(
  counts: readonly CountedPending[],
  zone: string,
  now: DateTime,
  days: number,
): ScheduleDay[] {
  const first = now.setZone(zone).startOf("day");
  // At a midnight: a day that began at 01:00 for DST (Santiago) does not shift the last one.
  const end = first.plus({ days }).startOf("day").toMillis();
  const totals = new Map<string, ScheduleDay>();
  for (const counted of counts) {
    if (counted.at < first.toMillis() || counted.at >= end) continue;
    const date = DateTime.fromMillis(counted.at, { zone }).toISODate() ?? "";
    const key = JSON.stringify([date, counted.channel, counted.ruleId]);
    const before = totals.get(key);
    totals.set(key, {
      date,
      channel: counted.channel,
      ruleId: counted.ruleId,
      count: (before?.count ?? 0) + counted.count,
    });
  }
  // A postponed follow-up's move (operations/postponed-moves.ts) can leave a row at 0.
  return [...totals.values()]
    .filter((row) => row.count > 0)
    .sort(
      (a, b) =>
        a.date.localeCompare(b.date) ||
        a.channel.localeCompare(b.channel) ||
        (a.ruleId ?? "").localeCompare(b.ruleId ?? ""),
    );
}

/** Where pending counts come from (DeliveryLedger.pendingCounts). */
export type PendingCountSource = (fromMs: number, days: number) => Promise<CountedPending[]>;

/**
 * The schedule of the next `days` local days in `zone` from the ledger's pending counts (which
 * every state change keeps exact): what `followups schedule`, the admin API and the console show.
 */
export async function readSchedule(
  pendingCounts: PendingCountSource,
  zone: string,
  now: DateTime,
  days: number,
): Promise<ScheduleDay[]> {
  const from = now.setZone(zone).startOf("day").toMillis();
  // Local days can straddle UTC days: read one more on each side.
  const counts = await pendingCounts(from - 86_400_000, days + 2);
  return scheduleByDay(counts, zone, now, days);
}

/** The schedule as a table for people, with a total per day and overall. */
export function renderScheduleText(
  rows: readonly ScheduleDay[],
  zone: string,
  days: number,
): string {
  if (rows.length === 0) return `No follow-ups pending in the next ${days} days (${zone}).\n`;
  const lines = [`Pending follow-ups, next ${days} days, by due date in ${zone}:`, ""];
  const header = ["date", "channel", "rule", "count"];
  const table = rows.map((row) => [
    row.date,
    row.channel,
    row.ruleId ?? "(planned before rules were counted)",
    String(row.count),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] ?? "").length)));
  const format = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === 3 ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  lines.push(format(header), ...table.map(format));
  const total = rows.reduce((sum, row) => sum + row.count, 0);
  lines.push("", `${total} pending in these ${days} days.`);
  return `${lines.join("\n")}\n`;
}
