import { Queue } from "bullmq";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eventJobId, latestSendJobId } from "../../src/queue/names.js";

/**
 * BullMQ's own id checks, run without Redis: Queue.addJob refuses "0" and "0:…" ("JobId cannot be
 * '0' or start with '0:'", classes/queue.js), then Job.create calls Job.validateOptions, which
 * refuses ids that read back as an integer ("Custom Id cannot be integers") and ids with a ':'
 * other than the a:b:c of old repeatable jobs ("Custom Id cannot contain :", classes/job.js).
 * Only the Redis write (backend.addJob) is replaced, by one that echoes the id back.
 */
class OfflineQueue extends Queue {
  /** BullMQ's refusal of this job id, or undefined when it accepts it. */
  async refusal(jobId: string): Promise<string | undefined> {
    try {
      const job = await this.addJob("purchase.completed", {}, { jobId });
      if (job.id !== jobId) throw new Error(`BullMQ kept ${job.id} instead of ${jobId}`);
      return undefined;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }
}
const bullmq: OfflineQueue = Object.assign(Object.create(OfflineQueue.prototype), {
  jobsOpts: {},
  qualifiedName: "bull:purchase-events",
  toKey: (type: string) => `bull:purchase-events:${type}`,
  backend: { addJob: async (_job: unknown, jobId: string) => jobId },
});

describe("BullMQ's id checks (the oracle below)", () => {
  it.each([
    ["7", "Custom Id cannot be integers"],
    ["-7", "Custom Id cannot be integers"],
    ["0", "JobId cannot be '0' or start with '0:'"],
    ["a:b", "Custom Id cannot contain :"],
  ])("refuses %s", async (id, message) => {
    expect(await bullmq.refusal(id)).toBe(message);
  });

  it.each(["evt-1", "007", "1e3", "a:b:c"])("accepts %s", async (id) => {
    expect(await bullmq.refusal(id)).toBeUndefined();
  });
});

describe("eventJobId", () => {
  it("keeps a plain event id, so re-publishing it collapses into one job", () => {
    expect(eventJobId("evt-2026-11-23-0001")).toBe("evt-2026-11-23-0001");
  });

  it.each(["7", "-7", "0", "-12"])("hashes %s, which BullMQ would refuse as an integer", (id) => {
    expect(eventJobId(id)).toMatch(/^e[A-Za-z0-9_-]{22}$/);
  });

  it.each([
    ["7", "eeQJpm-Qsio5G-7tFAXJlF-"],
    ["-7", "ep3DTJwydze3xLtn9cERPfI"],
    ["0", "eX-zrZv_IbzjZUnhsbWlsec"],
    ["-12", "eftACcOOUw-GQ0YqXf10OHt"],
    ["007", "007"],
    ["1e3", "1e3"],
    ["evt-1", "evt-1"],
    ["a:b", "eZ4OjHqv2jMwGYPk1wIJigr"],
    ["a:b:c", "esO4E-IDE_0JhR54ueCK3QQ"],
    [" 7", "efiJdYtaFgWfhJ23BcudYjD"],
    ["", "e47DEQpj8HBSa-_TImW-5JC"],
    ["x".repeat(200), "x".repeat(200)],
    ["x".repeat(201), "ehKBnjJCTf13PmZTVhmZo2m"],
  ])("maps %j to %j", async (id, expected) => {
    expect(eventJobId(id)).toBe(expected);
    expect(await bullmq.refusal(expected)).toBeUndefined();
  });

  it("gives BullMQ an id it accepts for any event id, the same every time", async () => {
    const ids = fc.oneof(fc.string(), fc.integer().map(String), fc.stringMatching(/^[-0-9]{1,5}$/));
    await fc.assert(
      fc.asyncProperty(ids, async (id) => {
        expect(await bullmq.refusal(eventJobId(id))).toBeUndefined();
        expect(eventJobId(id)).toBe(eventJobId(id));
      }),
    );
  });
});

describe("latestSendJobId", () => {
  const id = "f0123456789abcd";
  it("names the step's own job for its first send, a resend's or a retry's after one", () => {
    expect(latestSendJobId(id, { resends: 0, retries: 0 })).toBe(id);
    expect(latestSendJobId(id, { resends: 2, retries: 0 })).toBe(`${id}-r2`);
    expect(latestSendJobId(id, { resends: 0, retries: 3 })).toBe(`${id}-q3`);
  });

  it("names the latest requeue's job of a step both resent and retried, when the record tells", () => {
    expect(latestSendJobId(id, { resends: 1, retries: 2, lastRequeue: "resend" })).toBe(`${id}-r1`);
    expect(latestSendJobId(id, { resends: 1, retries: 2, lastRequeue: "retry" })).toBe(`${id}-q2`);
    expect(latestSendJobId(id, { resends: 1, retries: 2 })).toBeUndefined();
  });
});
