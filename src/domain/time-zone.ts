import {
  DateTime,
  type Duration,
  IANAZone,
  Zone,
  type ZoneOffsetFormat,
  type ZoneOffsetOptions,
} from "luxon";
import { remembered } from "./remembered.js";

/**
 * An IANA zone whose UTC offsets are remembered by span. luxon asks the zone for its offset at
 * every step of date arithmetic, and IANAZone answers each time through Intl (formatToParts):
 * over a third of the planner's time. An offset holds between two transitions, months apart, so
 * the first question about an instant finds the whole span around it (probes PROBE_MS apart, then
 * a binary search to the second) and every later instant in that span is answered from memory.
 *
 * Assumption, checked against Intl for every zone in a test: no two transitions of a zone lie
 * within PROBE_MS (three days) of each other. Not a week: Boa Vista's summer time of October 2000
 * and Gaza's of October 2040 last 6 days 23 hours, and a weekly probe from just outside one
 * stepped over it.
 */
class SpanCachedZone extends Zone {
  private readonly spans: { from: number; to: number; offset: number }[] = [];

  constructor(private readonly inner: IANAZone) {
    super();
  }

  override get type(): string {
    return "iana";
  }

  override get name(): string {
    return this.inner.name;
  }

  override get isUniversal(): boolean {
    return false;
  }

  override get isValid(): boolean {
    return this.inner.isValid;
  }

  override offsetName(ts: number, options: ZoneOffsetOptions): string | null {
    return this.inner.offsetName(ts, options);
  }

  override formatOffset(ts: number, format: ZoneOffsetFormat): string {
    return this.inner.formatOffset(ts, format);
  }

  override equals(other: Zone): boolean {
    return other.type === "iana" && other.name === this.name;
  }

  override offset(ts: number): number {
    const spans = this.spans;
    let lo = 0;
    let hi = spans.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const span = spans[mid] as { from: number; to: number; offset: number };
      if (ts < span.from) hi = mid - 1;
      else if (ts >= span.to) lo = mid + 1;
      else return span.offset;
    }
    const found = this.spanAround(ts);
    spans.splice(lo, 0, found);
    return found.offset;
  }

  /** The span of instants around `ts` (whole seconds) that share its offset, up to a year each way. */
  private spanAround(ts: number): { from: number; to: number; offset: number } {
    const offsetAt = (at: number) => this.inner.offset(at);
    const offset = offsetAt(ts);
    const second = Math.floor(ts / 1000) * 1000;
    // Never across a span already known: spans stay disjoint and sorted.
    const known = this.spans;
    const before = known.filter((span) => span.to <= second).at(-1)?.to ?? -Infinity;
    const after = known.find((span) => span.from > second)?.from ?? Infinity;
    const edge = (direction: 1 | -1): number => {
      let inside = second;
      for (let step = 1; step <= YEAR_IN_PROBES; step++) {
        let probe = second + direction * step * PROBE_MS;
        // A known span ahead: search up to its edge (within a probe of `inside`) and stop there.
        const limit = direction < 0 ? before : after - 1000;
        const atLimit = direction < 0 ? probe <= limit : probe >= limit;
        if (atLimit) probe = limit;
        if (offsetAt(probe) !== offset) {
          // The transition lies between `inside` (this offset) and `probe` (another): to the second.
          let same = inside;
          let other = probe;
          while (Math.abs(other - same) > 1000) {
            const mid = same + Math.round((other - same) / 2000) * 1000;
            if (offsetAt(mid) === offset) same = mid;
            else other = mid;
          }
          return direction < 0 ? same : other;
        }
        if (atLimit) return direction < 0 ? probe : after;
        inside = probe;
      }
      return direction < 0 ? inside : inside + 1000;
    };
    return { from: edge(-1), to: edge(1), offset };
  }
}

/** Shorter than any span between two offset changes of a zone (6 days 23 hours at the least). */
const PROBE_MS = 3 * 24 * 3600 * 1000;
const YEAR_IN_PROBES = 122;

/**
 * The zone to do date arithmetic in, by IANA name: one remembering instance per name (an
 * invalid name gives luxon's invalid zone, as a name would).
 */
export const zoneFor: (name: string) => Zone = remembered(spanCachedZone, 1_000);

/** A zone that remembers its offsets by span, not shared (zoneFor shares one per name). */
export function spanCachedZone(name: string): Zone {
  const zone = IANAZone.create(name);
  return zone.isValid ? new SpanCachedZone(zone) : zone;
}

const DAY_MS = 24 * 3600 * 1000;

/**
 * `at` plus `duration` as a delay is added: its calendar part (years to days) on the local wall
 * clock, then its time part (hours to milliseconds) in real time, as luxon's `plus` does. A wall
 * time that happens twice (a fall-back overlap) is its first occurrence, as a send window's
 * opening is, whatever the offset `at` has: luxon keeps `at`'s offset where it can, so a delay
 * from winter landed on the second 01:30 and one from summer on the first. A wall time inside a
 * spring-forward gap moves on by the gap's length (luxon's, java.time's and Temporal's choice).
 */
export function plusCalendar(at: DateTime, duration: Duration): DateTime {
  const { years, quarters, months, weeks, days, hours, minutes, seconds, milliseconds } =
    duration.toObject();
  let result = at.plus({ years, quarters, months, weeks, days });
  if (result.toMillis() !== at.toMillis()) result = firstOccurrence(result);
  return result.plus({ hours, minutes, seconds, milliseconds });
}

/** The same wall time an offset change earlier, if the clock went back there and it happened then. */
function firstOccurrence(at: DateTime): DateTime {
  const ts = at.toMillis();
  // Offsets change at most once in three days (see SpanCachedZone): a day before is before it.
  const earlier = at.zone.offset(ts - DAY_MS);
  if (earlier <= at.offset) return at;
  const first = ts - (earlier - at.offset) * 60_000;
  return at.zone.offset(first) === earlier ? DateTime.fromMillis(first, { zone: at.zone }) : at;
}
