import { describe, expect, it } from "vitest";
import { fileThankYou, type ThankYouGroup } from "../../src/domain/coalesce.js";

const HOUR = 3_600_000;
/** A group led by a purchase at 0 with a one-hour window, its thank-you waiting until 10:00. */
const WAITING: ThankYouGroup = { start: 0, until: HOUR, closesAt: 10 * HOUR, members: 0 };
const file = (purchasedAt: number, arrivedAt = purchasedAt, group = WAITING) =>
  fileThankYou(group, purchasedAt, arrivedAt, HOUR, 10);

describe("fileThankYou files a purchase as join-thank-you.lua does", () => {
  it("leads when the customer has no group", () => {
    expect(fileThankYou(undefined, 0, 0, HOUR, 10)).toBe("lead");
  });

  it("joins within the window while the leader's thank-you waits, up to the window's end (exclusive)", () => {
    expect(file(HOUR - 1)).toBe("joined");
    expect(file(HOUR)).not.toBe("joined");
    // An older purchase arriving late, within a window before the leader, joins too.
    expect(file(-HOUR + 1, 1)).toBe("joined");
  });

  it("stays alone within the window once the leader's thank-you went, or the group is full", () => {
    expect(file(HOUR / 2, 10 * HOUR)).toBe("alone");
    expect(file(HOUR / 2, HOUR / 2, { ...WAITING, members: 10 })).toBe("alone");
  });

  it("stays alone after the window while the leader's thank-you still waits: an open group is never replaced", () => {
    // The Lua script answers "alone" and keeps the group, so a third purchase cannot join this one.
    expect(file(HOUR + 10 * 60_000)).toBe("alone");
    expect(file(9 * HOUR)).toBe("alone");
  });

  it("leads a new group after the window once the leader's thank-you went", () => {
    expect(file(10 * HOUR)).toBe("lead");
    expect(file(11 * HOUR)).toBe("lead");
  });

  it("stays alone when older than the window before the leader", () => {
    expect(file(-HOUR, 0)).toBe("alone");
    expect(file(-HOUR, 11 * HOUR)).toBe("alone");
  });
});
