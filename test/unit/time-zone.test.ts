import { IANAZone } from "luxon";
import { describe, expect, it } from "vitest";
import { spanCachedZone, zoneFor } from "../../src/domain/time-zone.js";

/** A small deterministic generator, so a failure names instants that can be replayed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const FROM = Date.UTC(2000, 0, 1);
const TO = Date.UTC(2040, 0, 1);

describe("zoneFor: offsets remembered by span", () => {
  // Every zone × 360 instants, each asked of Intl and of the cache: 13 s on a quiet machine, over
  // the default 20 s in a busy unit run.
  it("answers exactly as Intl does, for every zone this runtime knows, at random instants and a second either side of the whole and half hours near them", {
    timeout: 120_000,
  }, () => {
    const random = seeded(20261202);
    const mismatches: string[] = [];
    for (const name of Intl.supportedValuesOf("timeZone")) {
      const cached = zoneFor(name);
      const exact = IANAZone.create(name);
      // Random instants in any order (spans are found out of order), and a second either side
      // of each whole hour and half hour near them (where transitions happen).
      for (let i = 0; i < 60; i++) {
        const at = Math.floor(FROM + random() * (TO - FROM));
        const hour = Math.floor(at / 1_800_000) * 1_800_000;
        for (const ts of [at, hour - 1, hour, hour + 1, hour + 999, hour - 1000]) {
          if (cached.offset(ts) !== exact.offset(ts))
            mismatches.push(`${name} at ${new Date(ts).toISOString()} (${ts})`);
        }
      }
    }
    expect(mismatches.slice(0, 10)).toEqual([]);
  });

  it("gets every transition of a DST zone to the second, whichever side is asked first", () => {
    const zone = zoneFor("Europe/Berlin");
    const exact = IANAZone.create("Europe/Berlin");
    // Summer time began at 01:00:00 UTC on 29 March 2026 and ends at 01:00:00 UTC on 25 October.
    for (const change of [Date.UTC(2026, 9, 25, 1), Date.UTC(2026, 2, 29, 1)]) {
      for (const ts of [change - 1, change, change - 1000, change + 1000, change + 59_999])
        expect(zone.offset(ts)).toBe(exact.offset(ts));
    }
    expect(zone.offset(Date.UTC(2026, 9, 25, 0, 59, 59, 999))).toBe(120);
    expect(zone.offset(Date.UTC(2026, 9, 25, 1))).toBe(60);
  });

  it.each([
    // Summer time of 6 days 23 hours: 2000-10-08T04:00Z to 2000-10-15T03:00Z.
    ["America/Boa_Vista", Date.UTC(2000, 9, 8, 3, 30), Date.UTC(2000, 9, 11, 12)],
    // Asked first just after a summer time of 6 days 23 hours (2040-10-20T00:00Z to 10-26T23:00Z).
    ["Asia/Gaza", Date.UTC(2040, 9, 26, 23, 30), Date.UTC(2040, 9, 23, 12)],
  ])(
    "%s: a span of less than a week next to the first instant asked is not swallowed by it",
    (name, first, inside) => {
      const zone = spanCachedZone(name);
      const exact = IANAZone.create(name);
      expect(zone.offset(first)).toBe(exact.offset(first));
      expect(zone.offset(inside)).toBe(exact.offset(inside));
    },
  );

  it("is the same zone to luxon: name, equality, invalid names", () => {
    expect(zoneFor("Asia/Kathmandu").name).toBe("Asia/Kathmandu");
    expect(zoneFor("Asia/Kathmandu").equals(IANAZone.create("Asia/Kathmandu"))).toBe(true);
    expect(zoneFor("Mars/Olympus").isValid).toBe(false);
  });
});
