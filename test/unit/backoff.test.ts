import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { retryAfterMs } from "../../src/channels/twilio-failure.js";
import { INTAKE_RETRY } from "../../src/queue/intake-processor.js";
import { cappedBackoff, retryDelayMs } from "../../src/queue/retry-policy.js";

/**
 * Bounds of the delivery retry delay: attempt n waits between half and all of
 * min(cap, base·2^(n-1)), rounded to whole milliseconds. Expected delays are written out.
 */

const BASE = 1_000;
const CAP = 60_000;
/** As close to 1 as a test needs: Math.random() never returns 1 itself. */
const ALMOST_ONE = 0.999999;

const delayAt = (random: number, base = BASE, cap = CAP) => cappedBackoff(base, cap, () => random);

describe("cappedBackoff(1000 ms, 60000 ms) by attempt", () => {
  it.each([
    // [attempt, ceiling, random()=0, random()=0.5, random()=0.999999]
    [1, 1_000, 500, 750, 1_000],
    [2, 2_000, 1_000, 1_500, 2_000],
    [3, 4_000, 2_000, 3_000, 4_000],
    [4, 8_000, 4_000, 6_000, 8_000],
    [5, 16_000, 8_000, 12_000, 16_000],
    [6, 32_000, 16_000, 24_000, 32_000],
    [7, 60_000, 30_000, 45_000, 60_000],
    [8, 60_000, 30_000, 45_000, 60_000],
    [9, 60_000, 30_000, 45_000, 60_000],
    [10, 60_000, 30_000, 45_000, 60_000],
    [11, 60_000, 30_000, 45_000, 60_000],
    [12, 60_000, 30_000, 45_000, 60_000],
  ])("attempt %i: ceiling %i, delays %i / %i / %i", (attempt, ceiling, low, mid, high) => {
    const delays = [delayAt(0)(attempt), delayAt(0.5)(attempt), delayAt(ALMOST_ONE)(attempt)];
    expect(delays).toEqual([low, mid, high]);
    for (const delay of delays) {
      expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
      expect(delay).toBeLessThanOrEqual(ceiling);
    }
  });
});

describe("cappedBackoff(3 ms, 100 ms): rounding an odd ceiling stays within bounds", () => {
  it.each([
    // [attempt, ceiling, random()=0, random()=0.5, random()=0.999999]
    [1, 3, 2, 2, 3],
    [2, 6, 3, 5, 6],
    [3, 12, 6, 9, 12],
    [6, 96, 48, 72, 96],
    [7, 100, 50, 75, 100],
    [12, 100, 50, 75, 100],
  ])("attempt %i: ceiling %i, delays %i / %i / %i", (attempt, ceiling, low, mid, high) => {
    const delays = [0, 0.5, ALMOST_ONE].map((r) => delayAt(r, 3, 100)(attempt));
    expect(delays).toEqual([low, mid, high]);
    for (const delay of delays) {
      expect(Number.isInteger(delay)).toBe(true);
      expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
      expect(delay).toBeLessThanOrEqual(ceiling);
    }
  });
});

describe("cappedBackoff far past the cap", () => {
  it.each([60, 1_000, 1_023, 1_024, 1_025, 5_000, Number.MAX_SAFE_INTEGER])(
    "attempt %i stays within [cap/2, cap], finite",
    (attempt) => {
      for (const [base, cap, low, high] of [
        // [base, cap, delay at random()=0, delay at random()=0.999999]
        [BASE, CAP, 30_000, 60_000],
        [30_000, 3_600_000, 1_800_000, 3_599_998], // the worker's defaults
        [1, 1, 1, 1],
      ] as const) {
        const delays = [delayAt(0, base, cap)(attempt), delayAt(ALMOST_ONE, base, cap)(attempt)];
        expect(delays).toEqual([low, high]);
        for (const delay of delays) {
          expect(Number.isFinite(delay)).toBe(true);
          expect(delay).toBeLessThanOrEqual(cap);
        }
      }
    },
  );
});

describe("cappedBackoff before the first attempt", () => {
  it.each([0, -1, -5, -1_000])("attempt %i waits as attempt 1 does", (attempt) => {
    expect(delayAt(0)(attempt)).toBe(500);
    expect(delayAt(0.5)(attempt)).toBe(750);
    expect(delayAt(ALMOST_ONE)(attempt)).toBe(1_000);
  });
});

describe("cappedBackoff is monotone in the attempt for a fixed random value", () => {
  it.each([0, 0.25, 0.5, 0.75, ALMOST_ONE])("random() = %d", (random) => {
    for (const [base, cap] of [
      [BASE, CAP],
      [3, 100],
      [30_000, 3_600_000],
    ] as const) {
      const delay = delayAt(random, base, cap);
      let previous = delay(-2);
      for (let attempt = -1; attempt <= 80; attempt++) {
        const next = delay(attempt);
        expect(next, `attempt ${attempt} (base ${base}, cap ${cap})`).toBeGreaterThanOrEqual(
          previous,
        );
        previous = next;
      }
      expect(previous).toBe(delay(1_000));
    }
  });
});

describe("cappedBackoff property", () => {
  /** min(cap, base·2^(attempt-1)) by doubling, stopping at the cap. */
  function ceilingOf(base: number, cap: number, attempt: number): number {
    let ceiling = base;
    for (let n = 1; n < attempt && ceiling < cap; n++) ceiling *= 2;
    return Math.min(ceiling, cap);
  }

  it("is a whole number of ms within [ceiling/2, ceiling], never above the cap", () => {
    const caseArb = fc
      .record({
        base: fc.integer({ min: 1, max: 10_000_000 }),
        extra: fc.integer({ min: 0, max: 1_000_000_000 }),
        attempt: fc.oneof(fc.integer({ min: -10, max: 64 }), fc.integer({ min: 65, max: 100_000 })),
        random: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      })
      .map(({ base, extra, attempt, random }) => ({ base, cap: base + extra, attempt, random }));
    fc.assert(
      fc.property(caseArb, ({ base, cap, attempt, random }) => {
        const delay = cappedBackoff(base, cap, () => random)(attempt);
        const ceiling = ceilingOf(base, cap, attempt);
        expect(Number.isInteger(delay)).toBe(true);
        expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
        expect(delay).toBeLessThanOrEqual(ceiling);
        expect(delay).toBeLessThanOrEqual(cap);
      }),
      { numRuns: 1_000 },
    );
  });
});

describe("INTAKE_RETRY", () => {
  // README, Queues: "8 attempts over two to four minutes (the first wait 1 to 2 s, each next one
  // doubling, none over 2 minutes)".
  it("spreads its 8 attempts over two to four minutes, waits from 1-2 s doubling to at most 2 minutes", () => {
    expect(INTAKE_RETRY.maxAttempts).toBe(8);
    for (let run = 0; run < 200; run++) {
      const waits = Array.from({ length: INTAKE_RETRY.maxAttempts - 1 }, (_, i) =>
        INTAKE_RETRY.delayMs(i + 1),
      );
      expect(waits[0]).toBeGreaterThanOrEqual(1_000);
      expect(waits[0]).toBeLessThanOrEqual(2_000);
      for (const wait of waits) expect(wait).toBeLessThanOrEqual(120_000);
      const total = waits.reduce((sum, wait) => sum + wait, 0);
      expect(total).toBeGreaterThanOrEqual(2 * 60_000);
      expect(total).toBeLessThanOrEqual(4.1 * 60_000);
    }
  });
});

describe("a provider's Retry-After", () => {
  const NOW = Date.parse("2026-12-07T10:00:00Z");
  it.each([
    ["120", 120_000],
    [" 5 ", 5_000],
    ["Mon, 07 Dec 2026 10:02:30 GMT", 150_000],
    ["0", undefined],
    ["Mon, 07 Dec 2026 09:59:00 GMT", undefined],
    ["-5", undefined],
    ["1.5", undefined],
    ["soon", undefined],
    ["", undefined],
  ])("reads %j as %s ms", (header, ms) => {
    expect(retryAfterMs(header, NOW)).toBe(ms);
  });

  const policy = { maxAttempts: 5, delayMs: () => 30_000, maxDelayMs: 3_600_000 };
  it.each([
    [undefined, 30_000, "the backoff without one"],
    [10_000, 30_000, "the backoff when it is longer"],
    [600_000, 600_000, "Retry-After when it is longer"],
    [86_400_000, 3_600_000, "the policy's longest wait at most"],
    [1_500.2, 30_000, "the backoff over a fraction"],
  ])("waits %s → %i ms: %s", (atLeast, wait, _why) => {
    expect(retryDelayMs(policy, 1, atLeast)).toBe(wait);
  });
});
