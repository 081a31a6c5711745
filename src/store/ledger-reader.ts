import type { Redis } from "ioredis";
import { CHANNELS, type Channel } from "../domain/events.js";

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** One hour of ledger counts, by aggregate field. */
export interface LedgerHour {
  /** Start of the hour, epoch ms. */
  readonly start: number;
  readonly counts: ReadonlyMap<string, number>;
}

/**
 * Reads the ledger's hourly aggregates and the per-day pending counts. Hours make report periods
 * exact in any zone whose offset is whole hours (and within the hour elsewhere).
 */
export class LedgerReader {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  /** Every hour in [since, until) that has counts. */
  async hours(since: number, until: number): Promise<LedgerHour[]> {
    const first = Math.floor(since / HOUR_MS);
    const last = Math.ceil(until / HOUR_MS) - 1;
    const pipeline = this.redis.pipeline();
    for (let hour = first; hour <= last; hour++) pipeline.hgetall(`${this.prefix}:fu:agg:${hour}`);
    const replies = (await pipeline.exec()) ?? [];
    const hours: LedgerHour[] = [];
    replies.forEach(([error, value], index) => {
      if (error) throw error;
      const fields = Object.entries((value ?? {}) as Record<string, string>);
      if (fields.length === 0) return;
      hours.push({
        start: (first + index) * HOUR_MS,
        counts: new Map(fields.map(([k, v]) => [k, Number(v)])),
      });
    });
    return hours;
  }

  /** Follow-ups still pending whose due day lies in [from, from + days), by channel. */
  async pending(from: number, days: number): Promise<Record<Channel, number>> {
    const firstDay = Math.floor(from / DAY_MS);
    const pipeline = this.redis.pipeline();
    for (let day = firstDay; day < firstDay + days; day++)
      pipeline.hgetall(`${this.prefix}:fu:due:${day}`);
    const totals = Object.fromEntries(CHANNELS.map((c) => [c, 0])) as Record<Channel, number>;
    for (const [error, value] of (await pipeline.exec()) ?? []) {
      if (error) throw error;
      for (const [channel, count] of Object.entries((value ?? {}) as Record<string, string>)) {
        if (channel in totals) totals[channel as Channel] += Math.max(0, Number(count));
      }
    }
    return totals;
  }
}

/** Adds up hours into one map of field → count. */
export function sumHours(hours: readonly LedgerHour[]): Map<string, number> {
  const total = new Map<string, number>();
  for (const hour of hours) {
    for (const [field, count] of hour.counts) total.set(field, (total.get(field) ?? 0) + count);
  }
  return total;
}
