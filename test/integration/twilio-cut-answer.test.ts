import { afterEach, expect, it } from "vitest";
import {
  eventually,
  type PipelineHarness,
  startPipeline,
  stepRecordOf,
  waitForState,
} from "../support/pipeline-harness.js";
import { publishTv, withVoiceCheckIn } from "../support/voice-check-in.js";

/**
 * Twilio created the message or call and began to answer 201, and the connection broke halfway
 * through the answer: the SDK cannot read the sid. The request was carried out, so the retry is a
 * possible duplicate, counted as one; a call's retry looks for the call in Twilio's Calls list
 * and takes it rather than ringing the customer again.
 */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const STEP_ID = "big-ticket.check-in";

it("an SMS whose 201 answer is cut off midway is retried as a possible duplicate, counted", async () => {
  pipeline = await startPipeline("twilio-cut-sms", { startWorker: false });
  const p = pipeline;
  const eventId = "evt-cut-sms";
  p.twilio.failNext({ status: 201, cutAnswer: true });
  await p.startWorker();
  await publishTv(p, eventId, "+447400112233");
  const sent = await waitForState(p, eventId, STEP_ID, "sent");
  // Twilio took both: the first answer was lost, not the message.
  expect(p.twilio.messages).toHaveLength(2);
  expect(sent).toMatchObject({ attempts: 2, providerId: p.twilio.messages[1]?.sid });
  // Counted as the possible duplicate it is (the step record's takeovers).
  expect(sent?.takeovers).toBe(1);
});

it("a call whose 201 answer is cut off midway is not placed again: the retry takes it from the Calls list", async () => {
  pipeline = await startPipeline("twilio-cut-call", { startWorker: false });
  const p = pipeline;
  await withVoiceCheckIn(p.configDir);
  p.twilio.failNext({ status: 201, cutAnswer: true });
  await p.startWorker();
  const eventId = "evt-cut-call";
  await publishTv(p, eventId, "+447400112233");
  const [first] = await p.twilio.waitForCalls(1, 15_000);
  const sent = await eventually(async () => {
    const record = await stepRecordOf(p, eventId, STEP_ID);
    return record?.state === "sent" ? record : undefined;
  }, "the call step to be sent");
  expect(sent).toMatchObject({ attempts: 2, providerId: first?.sid });
  expect(p.twilio.calls).toHaveLength(1);
});
