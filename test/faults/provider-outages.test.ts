import { afterEach, expect, it } from "vitest";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import type { TwilioScriptedFailure } from "../support/twilio-fake.js";
import {
  bySize,
  countInState,
  makeCheckInsDueSoon,
  printFigures,
  publishBurst,
  readRecords,
  readyStatus,
  receivedByKey,
  sleep,
  tally,
  WorkerFleet,
  waitUntilDrained,
  waitUntilSettled,
} from "./fault-support.js";

let pipeline: PipelineHarness | undefined;
let fleet: WorkerFleet | undefined;
afterEach(async () => {
  await fleet?.close();
  fleet = undefined;
  await pipeline?.close();
  pipeline = undefined;
});

const PURCHASES = bySize(400, 150);
const WORKERS = 2;
const CONCURRENCY = 8;
/** Provider latency: SMTP answers fast, Twilio slowly enough for its error bursts to be spread. */
const SMTP_LATENCY_MS = 50;
const TWILIO_LATENCY_MS = 200;
const SMTP_DOWN_MS = bySize(8_000, 4_000);
/** Twilio answers this many requests in a row with an error, this many times over the burst. */
const TWILIO_BURST = bySize(60, 30);
const TWILIO_BURSTS: readonly TwilioScriptedFailure[] = [
  { status: 429, code: 20429 },
  { status: 500 },
  { status: 429, code: 20429, retryAfterSeconds: 1 },
  { status: 503 },
];
/** Enough attempts, with backoff of 0.2 s doubling to at most 2 s, to outlast the outage. */
const RETRY_ENV = {
  DELIVERY_ATTEMPTS: "30",
  DELIVERY_RETRY_BASE_MS: "200",
  DELIVERY_RETRY_MAX_MS: "2000",
};

it("retries with backoff through an SMTP outage and bursts of Twilio 429 and 5xx, and delivers everything", {
  timeout: bySize(300_000, 150_000),
}, async () => {
  pipeline = await startPipeline("faults-providers", {
    startWorker: false,
    env: { ...RETRY_ENV, DELIVERY_CONCURRENCY: String(CONCURRENCY), INTAKE_CONCURRENCY: "8" },
  });
  const p = pipeline;
  await makeCheckInsDueSoon(p.configDir);
  p.sink.setReplyDelay(SMTP_LATENCY_MS);
  p.twilio.setResponseDelay(TWILIO_LATENCY_MS);
  const steps = await publishBurst(p, "providers", PURCHASES);

  const emails = steps.filter((s) => s.channel === "email").length;
  const texts = steps.length - emails;

  fleet = new WorkerFleet(p.envVars);
  const f = fleet;
  const started = Date.now();
  await Promise.all(Array.from({ length: WORKERS }, () => f.spawn()));

  let inFlightAtOutage = 0;
  let deliveredAtOutage = 0;
  const smtpOutage = async () => {
    await eventually(
      async () => (p.sink.messages.length >= emails * 0.1 ? true : undefined),
      "a tenth of the emails delivered",
      60_000,
    );
    inFlightAtOutage = countInState(await readRecords(p.store, steps), "sending");
    deliveredAtOutage = p.sink.messages.length;
    await p.sink.setDown(true);
    await sleep(SMTP_DOWN_MS);
    await p.sink.setDown(false);
  };
  // Twilio fails a burst of requests in a row at 0%, 25%, 50% and 75% of the texts delivered.
  const twilioBursts = async () => {
    for (const [index, failure] of TWILIO_BURSTS.entries()) {
      await eventually(
        async () => (p.twilio.messages.length >= (texts * index) / 4 ? true : undefined),
        `${index * 25}% of the texts delivered`,
        60_000,
      );
      p.twilio.failNext(...Array.from({ length: TWILIO_BURST }, () => failure));
    }
  };
  await Promise.all([smtpOutage(), twilioBursts()]);

  const records = await waitUntilSettled(p, steps, bySize(180_000, 60_000));
  const elapsedMs = Date.now() - started;
  await waitUntilDrained(p, 30_000);
  const t = tally(steps, records, receivedByKey(p.sink, p.twilio));
  const twilioRefused = p.twilio.requests - p.twilio.messages.length;
  const emailRetries = steps
    .filter((s) => s.channel === "email")
    .reduce(
      (n, s) => n + Math.max(0, (records.get(`${s.eventId} ${s.stepId}`)?.attempts ?? 1) - 1),
      0,
    );
  const ready = await Promise.all(f.live().map(readyStatus));
  printFigures("SMTP down, Twilio 429/5xx", {
    purchases: PURCHASES,
    steps: t.steps,
    sends: t.received,
    sent: t.sent,
    duplicates: t.duplicates,
    takeovers: t.takeovers,
    retries: t.retries,
    "error logs": f.errorLogs().length,
    "email retries": emailRetries,
    "sms retries": t.retries - emailRetries,
    "SMTP down s": SMTP_DOWN_MS / 1000,
    "Twilio errors": twilioRefused,
    "in flight at outage": inFlightAtOutage,
    seconds: (elapsedMs / 1000).toFixed(1),
  });

  expect(f.crashed(), f.outputTail()).toEqual([]);
  expect(ready, "readyz of every worker").toEqual(f.live().map(() => 200));
  expect(deliveredAtOutage, "the outage began mid-burst").toBeLessThan(emails);
  expect(t.missing, "steps without a record").toBe(0);
  expect(t.open, "steps left scheduled or sending").toBe(0);
  expect(t.sent, "steps sent").toBe(t.steps);
  expect(t.sentButNotDelivered, "recorded sent but never arrived").toBe(0);
  expect(t.deliveredButNotSent, "arrived but recorded otherwise").toBe(0);
  // Every scripted Twilio error was answered to a real request and retried, not lost (a retry
  // may also follow a reset keep-alive connection, so at least as many retries as errors).
  expect(twilioRefused).toBe(TWILIO_BURST * TWILIO_BURSTS.length);
  expect(t.retries - emailRetries).toBeGreaterThanOrEqual(twilioRefused);
  expect(emailRetries).toBeGreaterThan(0);
  // A resend without a takeover needs a reply lost after the server took the message: only a
  // send in flight when the server went down can have that happen, and each one is counted.
  expect(t.duplicates).toBeLessThanOrEqual(inFlightAtOutage);
  expect(t.duplicates, "every duplicate counted as possible").toBeLessThanOrEqual(t.takeovers);
});
