import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { followUpJobId } from "../../src/queue/names.js";
import { StoreKeys, shardScope } from "../../src/store/keys.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
  stepRecordOf,
  waitForState,
} from "../support/pipeline-harness.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const thankYou = "big-ticket.thank-you";
const checkIn = "big-ticket.check-in";

/** A big-ticket purchase of a customer of its own: a thank-you in an hour, a check-in later. */
const bought = (id: string) =>
  purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt: DateTime.utc().minus({ minutes: 5 }).toISO({ suppressMilliseconds: true }) ?? "",
    customer: { id: `cus-${id}`, email: `${id}@example.com`, name: "Ada Stepwise" },
    items: [item("televisions", "899.00", { name: "OLED TV" })],
  });

/** The purchase's record key, where each step's record is the field `s:<step id>`. */
async function recordKey(p: PipelineHarness, eventId: string): Promise<string> {
  return new StoreKeys(shardScope(p.prefix, await p.shardOf(eventId), p.shards)).eventRecord(
    eventId,
  );
}

/** A step record in a form this version does not know (a newer version's, or damaged bytes). */
const NEWER_FORM = "9|a form of a later version";

describe("a follow-up whose step record this version cannot read", () => {
  it("is neither sent nor changed: its job waits ten minutes for a worker that can read it, said once per look by ids", async () => {
    pipeline = await startPipeline("unreadable-step", {
      env: { DELIVERY_RETRY_BASE_MS: "1000", DELIVERY_RETRY_MAX_MS: "2000" },
    });
    const p = pipeline;
    await p.publisher.publish(bought("evt-step-newer") as never);
    await waitForState(p, "evt-step-newer", checkIn, "scheduled");
    const key = await recordKey(p, "evt-step-newer");
    await p.redis.hset(key, `s:${thankYou}`, NEWER_FORM);
    const startedAt = Date.now();
    // Its job, as a promoter that could read the record made it.
    const queue = p.followUpQueues[await p.shardOf("evt-step-newer")] ?? p.followUps;
    await queue.add(
      "email",
      { e: "evt-step-newer", s: thankYou },
      { jobId: followUpJobId("evt-step-newer", thankYou) },
    );

    const lookedAt = () =>
      p.logs.some(
        (line) =>
          line.eventId === "evt-step-newer" &&
          line.stepId === thankYou &&
          String(line.msg).includes("cannot read"),
      );
    // Put back once the worker has found the record it cannot read (on a busy machine the job
    // can be put back before that for a moment, behind the rate limit's slot, say).
    const job = await eventually(async () => {
      const found = await p.followUps.getJob(followUpJobId("evt-step-newer", thankYou));
      return lookedAt() &&
        found &&
        (await found.getState()) === "delayed" &&
        found.attemptsStarted >= 1
        ? found
        : undefined;
    }, "the job put back to wait");
    // About ten minutes on, not the retry policy's seconds; no error, no attempt counted.
    expect(job.timestamp + job.delay - startedAt).toBeGreaterThan(9 * 60_000);
    expect(job.timestamp + job.delay - startedAt).toBeLessThan(11 * 60_000);
    expect(await p.redis.hget(key, `s:${thankYou}`)).toBe(NEWER_FORM);
    expect(p.sink.messages).toHaveLength(0);
    const said = p.logs.filter(
      (line) =>
        line.eventId === "evt-step-newer" &&
        line.stepId === thankYou &&
        String(line.msg).includes("cannot read"),
    );
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ level: 40, recordLength: NEWER_FORM.length });
    expect(p.logs.filter((line) => line.msg === "delivery error; will retry")).toEqual([]);
    // The other step is left as planned.
    expect((await stepRecordOf(p, "evt-step-newer", checkIn))?.state).toBe("scheduled");
  });

  it("does not hold up a sibling step: that one is sent, and the purchase is kept for the unreadable one", async () => {
    pipeline = await startPipeline("unreadable-sibling");
    const p = pipeline;
    await p.publisher.publish(bought("evt-sibling") as never);
    await waitForState(p, "evt-sibling", checkIn, "scheduled");
    const key = await recordKey(p, "evt-sibling");
    await p.redis.hset(key, `s:${checkIn}`, NEWER_FORM);
    const purchaseBefore = await p.redis.hgetBuffer(key, "p0");
    expect(purchaseBefore).not.toBeNull();

    await promoteStep(p, "evt-sibling", thankYou);
    await waitForState(p, "evt-sibling", thankYou, "sent");
    expect(p.sink.messages.map((m) => m.envelope.rcptTo)).toEqual([["evt-sibling@example.com"]]);
    // Its purchase stays whole: the check-in, which may be pending, renders from it.
    expect(await p.redis.hgetBuffer(key, "p0")).toEqual(purchaseBefore);
    expect(await p.redis.hget(key, `s:${checkIn}`)).toBe(NEWER_FORM);
  });
});
