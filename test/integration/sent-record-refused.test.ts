import { DateTime } from "luxon";
import { afterEach, expect, it } from "vitest";
import { quietRedisErrors } from "../faults/fault-support.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  startPipeline,
  waitForState,
} from "../support/pipeline-harness.js";
import { findFreePort, type RedisServer, startRedisServer } from "../support/redis-server.js";
import { settledSteps } from "../support/settled-queue.js";

/**
 * The provider took the message, and Redis refuses the write that records it (`READONLY`: a
 * failover turned the master the worker writes to into a replica, for a moment). The worker that
 * sent it knows it went; it must not leave the step `sending` for another run of the job to take
 * over after DELIVERY_LEASE_MS and send the customer the same email again.
 */

let server: RedisServer | undefined;
let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
  await server?.stop();
  server = undefined;
});

const EVENT_ID = "evt-readonly";
const STEP_ID = "big-ticket.thank-you";
const REFUSED_LINE = "the provider took the message and Redis refused its sent state; trying again";

it("a send whose `sent` record Redis refuses for a moment is recorded once it takes writes again, and goes out once", {
  timeout: 60_000,
}, async () => {
  server = await startRedisServer();
  pipeline = await startPipeline("sent-refused", { redisUrl: server.url });
  const p = pipeline;
  quietRedisErrors(p);
  // The sink records the message as it arrives and says 250 a moment later: meanwhile, the test
  // makes Redis refuse writes, so the worker's `sent` state change is what Redis refuses.
  p.sink.setReplyDelay(500);
  const occurredAt = DateTime.utc().minus({ hours: 2 }).startOf("second");
  await p.publisher.publish(
    purchaseInput({
      id: EVENT_ID,
      occurredAt: occurredAt.toISO({ suppressMilliseconds: true }) ?? "",
      items: [item("televisions", "899.00")],
    }) as never,
  );
  await p.sink.waitForMessages(1, 20_000);
  // A replica of a master that is not there: every write answers READONLY, the data stays.
  await p.redis.replicaof("127.0.0.1", await findFreePort());
  // Writes are taken again once the worker has met the refusal of the `sent` state change and
  // tried again, still refused. (Taken again at the first refusal, with only the blocked clients'
  // UNBLOCKED errors met, the worker then took 4.5 s to close.)
  await eventually(
    async () => (p.logs.filter((line) => line.msg === REFUSED_LINE).length >= 2 ? true : undefined),
    "Redis to refuse the sent state, and its retry",
  );
  await p.redis.replicaof("NO", "ONE");

  const record = await waitForState(p, EVENT_ID, STEP_ID, "sent");
  // Only a run of the step's job could take the step over and send again: every one has finished,
  // retries and a stalled job's rerun included.
  await settledSteps(p.followUpQueues, [{ eventId: EVENT_ID, stepId: STEP_ID }], "the thank-you");
  expect(p.sink.messages).toHaveLength(1);
  // Not by luck of timing: Redis did refuse the record, and the worker tried again.
  expect(p.logs.map((line) => line.msg)).toContain(REFUSED_LINE);
  expect(await waitForState(p, EVENT_ID, STEP_ID, "sent")).toMatchObject({
    attempts: 1,
    takeovers: 0,
    providerId: record.providerId,
  });
});
