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
 *
 * Twilio answers 429 (too many requests) or 503 with a Retry-After header saying how long to wait:
 * the retry waits at least that long, rather than the backoff alone, and never longer than
 * DELIVERY_RETRY_MAX_MS, the longest wait between retries.
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

/** A backoff of a second at most, so that a longer wait can only come from Retry-After. */
const RETRY_ENV = { DELIVERY_RETRY_BASE_MS: "1000", DELIVERY_RETRY_MAX_MS: "900000" };

/** How long the step waits for its retry after its first attempt failed (ms). */
async function retryWait(p: PipelineHarness, eventId: string): Promise<number> {
  const record = await eventually(async () => {
    const found = await stepRecordOf(p, eventId, STEP_ID);
    return found?.postponed?.code === "retry" ? found : undefined;
  }, "the step to wait for its retry");
  expect(record).toMatchObject({ state: "scheduled", attempts: 1 });
  return (record.postponed?.until ?? 0) - (record.changedAt ?? 0);
}

it.each([
  { name: "429, Retry-After 600 s", status: 429, seconds: 600, wait: 600_000 },
  {
    name: "503, Retry-After of a day: the longest wait",
    status: 503,
    seconds: 86_400,
    wait: 900_000,
  },
])("an SMS answered $name waits that long for its retry", async ({ status, seconds, wait }) => {
  pipeline = await startPipeline("twilio-retry-after-sms", { startWorker: false, env: RETRY_ENV });
  const p = pipeline;
  p.twilio.failNext({ status, retryAfterSeconds: seconds });
  await p.startWorker();
  await publishTv(p, "evt-retry-after-sms", "+447400112233");
  expect(await retryWait(p, "evt-retry-after-sms")).toBe(wait);
  expect(p.twilio.messages).toHaveLength(0);
});

it("a call answered 429 with Retry-After waits that long for its retry", async () => {
  pipeline = await startPipeline("twilio-retry-after-call", {
    startWorker: false,
    env: RETRY_ENV,
  });
  const p = pipeline;
  await withVoiceCheckIn(p.configDir);
  p.twilio.failNext({ status: 429, retryAfterSeconds: 300 });
  await p.startWorker();
  await publishTv(p, "evt-retry-after-call", "+447400112233");
  expect(await retryWait(p, "evt-retry-after-call")).toBe(300_000);
  expect(p.twilio.calls).toHaveLength(0);
});
