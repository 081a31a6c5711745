import { afterEach, expect, it } from "vitest";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import {
  bySize,
  countInState,
  deliveredCount,
  FAULTS_SEED,
  makeCheckInsDueSoon,
  printFigures,
  publishBurst,
  readRecords,
  receivedByKey,
  seededRandom,
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
const KILLS = bySize(5, 3);
/** Provider latency: sends take this long, so a kill finds several of them in flight. */
const PROVIDER_LATENCY_MS = 250;

it("sends every follow-up of a burst, duplicates bounded by the sends cut off, when workers are killed -9 again and again", {
  timeout: bySize(300_000, 150_000),
}, async () => {
  pipeline = await startPipeline("faults-kill", {
    startWorker: false,
    env: { DELIVERY_CONCURRENCY: String(CONCURRENCY), INTAKE_CONCURRENCY: "8" },
  });
  const p = pipeline;
  await makeCheckInsDueSoon(p.configDir);
  p.sink.setReplyDelay(PROVIDER_LATENCY_MS);
  p.twilio.setResponseDelay(PROVIDER_LATENCY_MS);
  const steps = await publishBurst(p, "kill", PURCHASES);
  const random = seededRandom(FAULTS_SEED);

  fleet = new WorkerFleet(p.envVars);
  const f = fleet;
  const started = Date.now();
  await Promise.all(Array.from({ length: WORKERS }, () => f.spawn()));
  const inFlightAtKills: number[] = [];
  const deliveredAtKills: number[] = [];
  const replacements: Promise<unknown>[] = [];
  // Kill moments as shares of the burst delivered, spread over it; the first may fall while the
  // events are still being planned. Each kill hits a worker that is up, and is replaced at once.
  const thresholds = Array.from({ length: KILLS }, (_, i) =>
    i === 0 ? 0 : Math.floor(steps.length * (0.05 + 0.8 * random())),
  ).sort((a, b) => a - b);
  for (const threshold of thresholds) {
    await eventually(
      async () => (deliveredCount(p) >= threshold ? true : undefined),
      `${threshold} messages delivered`,
      120_000,
    );
    await sleep(random() * 300);
    await f.killOne(random);
    deliveredAtKills.push(deliveredCount(p));
    // The victim's claimed sends stay `sending` until their lease runs out: all are counted here
    // (with the other workers' sends of the moment, so this is an upper bound).
    inFlightAtKills.push(countInState(await readRecords(p.store, steps), "sending"));
    replacements.push(f.spawn());
  }
  await Promise.all(replacements);

  const records = await waitUntilSettled(p, steps, bySize(180_000, 60_000));
  const elapsedMs = Date.now() - started;
  await waitUntilDrained(p, 30_000);
  const t = tally(steps, records, receivedByKey(p.sink, p.twilio));
  const inFlight = inFlightAtKills.reduce((a, b) => a + b, 0);
  const events = await p.events.getJobCounts("completed", "failed");
  printFigures("kill -9 workers", {
    purchases: PURCHASES,
    steps: t.steps,
    sends: t.received,
    sent: t.sent,
    duplicates: t.duplicates,
    takeovers: t.takeovers,
    retries: t.retries,
    "error logs": f.errorLogs().length,
    kills: KILLS,
    "delivered at kills": deliveredAtKills.join(" "),
    "in flight at kills": inFlightAtKills.join(" "),
    seconds: (elapsedMs / 1000).toFixed(1),
  });

  expect(f.crashed(), f.outputTail()).toEqual([]);
  expect(
    deliveredAtKills.some((n) => n > 0 && n < steps.length),
    "a kill mid-burst",
  ).toBe(true);
  expect(events).toEqual({ completed: PURCHASES, failed: 0 });
  expect(t.missing, "steps without a record").toBe(0);
  expect(t.open, "steps left scheduled or sending").toBe(0);
  expect(t.sent, "steps sent").toBe(t.steps);
  expect(t.sentButNotDelivered, "recorded sent but never arrived").toBe(0);
  expect(t.deliveredButNotSent, "arrived but recorded otherwise").toBe(0);
  // A duplicate needs a send cut off after the provider accepted it, then taken over and redone.
  expect(t.duplicates).toBeLessThanOrEqual(t.takeovers);
  expect(t.duplicates).toBeLessThanOrEqual(inFlight);
  expect(t.duplicates).toBeLessThanOrEqual(CONCURRENCY * KILLS);
});
