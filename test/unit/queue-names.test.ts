import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eventJobId } from "../../src/queue/names.js";

/** BullMQ's own checks on a custom job id (Job.validateOptions). */
function bullmqAccepts(jobId: string): boolean {
  return `${Number.parseInt(jobId, 10)}` !== jobId && !jobId.includes(":");
}

describe("eventJobId", () => {
  it("keeps a plain event id, so re-publishing it collapses into one job", () => {
    expect(eventJobId("evt-2026-11-23-0001")).toBe("evt-2026-11-23-0001");
  });

  it.each(["7", "-7", "0", "-12"])("hashes %s, which BullMQ would refuse as an integer", (id) => {
    expect(eventJobId(id)).toMatch(/^e[A-Za-z0-9_-]{22}$/);
  });

  it("gives BullMQ an id it accepts for any event id, the same every time", () => {
    const ids = fc.oneof(fc.string(), fc.integer().map(String), fc.stringMatching(/^[-0-9]{1,5}$/));
    fc.assert(
      fc.property(ids, (id) => {
        expect(bullmqAccepts(eventJobId(id))).toBe(true);
        expect(eventJobId(id)).toBe(eventJobId(id));
      }),
    );
  });
});
