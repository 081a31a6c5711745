import { describe, expect, it } from "vitest";
import { readEntries, scheduleEntry } from "../../src/store/follow-up-schedule.js";

describe("compact schedule entries", () => {
  it("write a step as its step id, a space and the event id, whatever the event id holds", () => {
    const entry = scheduleEntry('ord 7 "x" [y]', "big-ticket.check-in");
    expect(entry).toBe('big-ticket.check-in ord 7 "x" [y]');
    expect(readEntries([entry])).toEqual([
      { eventId: 'ord 7 "x" [y]', stepId: "big-ticket.check-in" },
    ]);
  });

  it("read the JSON elements of key layout 4 and before, and pass over what is neither", () => {
    expect(
      readEntries([JSON.stringify(["evt 1", "r.s"]), "not-an-entry", "[broken", "r.s evt-2"]),
    ).toEqual([
      { eventId: "evt 1", stepId: "r.s" },
      { eventId: "evt-2", stepId: "r.s" },
    ]);
  });

  it("keep JSON for a step id that could not be told from the event id", () => {
    const entry = scheduleEntry("evt", "odd step");
    expect(entry).toBe(JSON.stringify(["evt", "odd step"]));
    expect(readEntries([entry])).toEqual([{ eventId: "evt", stepId: "odd step" }]);
  });
});
