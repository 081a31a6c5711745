import { describe, expect, it } from "vitest";
import {
  decodeStoredStep,
  encodeStoredStep,
  readStepRecord,
  type StoredStep,
} from "../../src/store/step-record.js";

/** A step record's note that its job waits (`w`, `wy`), as operators are shown it. */

const DUE = Date.UTC(2026, 11, 4, 21);
const WAITS_UNTIL = Date.UTC(2026, 11, 5, 9);
const scheduled: StoredStep = { s: "scheduled", d: DUE, c: "email", k: "thank-you" };

describe("a step's note that its job waits", () => {
  it("reads back on a scheduled step, with the due time left as planned", () => {
    const raw = encodeStoredStep({ ...scheduled, w: WAITS_UNTIL, wy: "s" });
    expect(readStepRecord(raw)).toMatchObject({
      state: "scheduled",
      dueAt: DUE,
      postponed: { until: WAITS_UNTIL, code: "send-window" },
    });
  });

  it("is dropped from a settled step's stored form, and not shown on a sending one", () => {
    for (const s of ["sent", "failed", "skipped", "cancelled"] as const) {
      const raw = encodeStoredStep({ ...scheduled, s, t: DUE + 1, w: WAITS_UNTIL, wy: "f" });
      expect(decodeStoredStep(raw)).not.toHaveProperty("w");
      expect(decodeStoredStep(raw)).not.toHaveProperty("wy");
    }
    const sending = encodeStoredStep({
      ...scheduled,
      s: "sending",
      t: DUE,
      w: WAITS_UNTIL,
      wy: "f",
    });
    expect(readStepRecord(sending).postponed).toBeUndefined();
  });

  it("is not shown when written before the step's last change (left by an earlier version)", () => {
    const retriedSince = encodeStoredStep({
      ...scheduled,
      t: WAITS_UNTIL,
      w: WAITS_UNTIL,
      wy: "s",
    });
    expect(readStepRecord(retriedSince).postponed).toBeUndefined();
    const unknownReason = encodeStoredStep({ ...scheduled, w: WAITS_UNTIL, wy: "?" });
    expect(readStepRecord(unknownReason).postponed).toBeUndefined();
  });
});
