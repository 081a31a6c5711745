import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { DeliveryLedger } from "../../src/store/delivery-ledger.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import {
  bySize,
  countInState,
  deliveredCount,
  FAULTS_SEED,
  hoursAgo,
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
/** Provider latency: sends take this long, so a kill finds several of them in flight. */
const PROVIDER_LATENCY_MS = 250;

/** The thank-you and the check-in a minute after the purchase: what was months away is due now. */
async function makeEverythingDueNow(configDir: string): Promise<void> {
  const file = path.join(configDir, "rules.yaml");
  const doc = parseDocument(await readFile(file, "utf8"));
  const rules = doc.toJS().rules as { id: string }[];
  const index = rules.findIndex((rule) => rule.id === "big-ticket");
  doc.setIn(["rules", index, "steps", 0, "delay"], "PT1M");
  doc.setIn(["rules", index, "steps", 1, "delay"], "PT2M");
  // A coalesced thank-you would still wait out its hour.
  doc.deleteIn(["rules", index, "coalesce"]);
  await writeFile(file, doc.toString());
}

it("loses nothing and sends nothing twice beyond the sends cut off, when workers are killed -9 while they re-plan and while they promote", {
  timeout: bySize(300_000, 150_000),
}, async () => {
  pipeline = await startPipeline("faults-schedule", {
    startWorker: false,
    env: {
      DELIVERY_CONCURRENCY: String(CONCURRENCY),
      INTAKE_CONCURRENCY: "8",
      PROMOTE_HORIZON_MS: "60000",
    },
  });
  const p = pipeline;
  p.sink.setReplyDelay(PROVIDER_LATENCY_MS);
  p.twilio.setResponseDelay(PROVIDER_LATENCY_MS);
  // Bought five minutes ago: the thank-you is due in 55 minutes, the check-in in three months.
  // Both wait in the compact schedule, not as jobs.
  const steps = await publishBurst(p, "sched", PURCHASES, hoursAgo(5 / 60));
  const random = seededRandom(FAULTS_SEED);
  fleet = new WorkerFleet(p.envVars);
  const f = fleet;
  await Promise.all(Array.from({ length: WORKERS }, () => f.spawn()));
  const ledger = new DeliveryLedger(p.redis, p.prefix);
  await eventually(
    async () => {
      const pending = await ledger.pending(Date.now() - 86_400_000, 200);
      const jobs = await p.followUps.getJobCounts("delayed", "waiting");
      const queued = (jobs.delayed ?? 0) + (jobs.waiting ?? 0);
      return pending.email + pending.sms === steps.length && queued === 0 ? true : undefined;
    },
    "every step to wait in the schedule",
    60_000,
  );

  // The rules edit makes every step due now: the workers re-plan (moving each step to now), then
  // promote and send. One kill lands while they re-plan, the next ones while they promote and send.
  const started = Date.now();
  await makeEverythingDueNow(p.configDir);
  const inFlightAtKills: number[] = [];
  const deliveredAtKills: number[] = [];
  const replacements: Promise<unknown>[] = [];
  const kill = async () => {
    // One worker at a time from here on: the other keeps promoting and sending.
    await f.killOne(random);
    deliveredAtKills.push(deliveredCount(p));
    inFlightAtKills.push(countInState(await readRecords(p.store, steps), "sending"));
    replacements.push(f.spawn());
  };
  // Both workers are killed together as soon as the re-planning is seen under way (a purchase at
  // the new generation), so the walk must resume in their replacements.
  const eventIds = [...new Set(steps.map((s) => s.eventId))];
  const before = (await p.store.generationOf(eventIds[0] ?? "")) ?? 0;
  const replanned = async () => {
    const generations = await Promise.all(eventIds.map((id) => p.store.generationOf(id)));
    return generations.filter((g) => (g ?? 0) > before).length;
  };
  await eventually(
    async () => ((await replanned()) > 0 ? true : undefined),
    "re-planning to start",
    30_000,
  );
  await f.killOne(random);
  await f.killOne(random);
  const replannedAtFirstKill = await replanned();
  deliveredAtKills.push(deliveredCount(p));
  inFlightAtKills.push(countInState(await readRecords(p.store, steps), "sending"));
  replacements.push(f.spawn(), f.spawn());
  for (const share of [0.2 + 0.2 * random(), 0.5 + 0.3 * random()]) {
    const threshold = Math.floor(steps.length * share);
    await eventually(
      async () => (deliveredCount(p) >= threshold ? true : undefined),
      `${threshold} messages delivered`,
      120_000,
    );
    await sleep(random() * 300);
    await kill();
  }
  await Promise.all(replacements);

  const records = await waitUntilSettled(p, steps, bySize(180_000, 90_000));
  const elapsedMs = Date.now() - started;
  await waitUntilDrained(p, 30_000);
  const t = tally(steps, records, receivedByKey(p.sink, p.twilio));
  const inFlight = inFlightAtKills.reduce((a, b) => a + b, 0);
  printFigures("kill -9 while re-planning and promoting", {
    purchases: PURCHASES,
    steps: t.steps,
    sends: t.received,
    sent: t.sent,
    duplicates: t.duplicates,
    takeovers: t.takeovers,
    "error logs": f.errorLogs().length,
    "re-planned at the first kill": `${replannedAtFirstKill} of ${eventIds.length}`,
    "delivered at kills": deliveredAtKills.join(" "),
    "in flight at kills": inFlightAtKills.join(" "),
    seconds: (elapsedMs / 1000).toFixed(1),
  });

  expect(f.crashed(), f.outputTail()).toEqual([]);
  expect(replannedAtFirstKill, "the first kills land mid re-planning").toBeLessThan(
    eventIds.length,
  );
  expect(deliveredAtKills[0], "the first kills land before most is sent").toBeLessThan(
    steps.length / 2,
  );
  expect(t.missing, "steps without a record").toBe(0);
  expect(t.open, "steps left scheduled or sending").toBe(0);
  expect(t.sent, "steps sent").toBe(t.steps);
  expect(t.sentButNotDelivered, "recorded sent but never arrived").toBe(0);
  expect(t.deliveredButNotSent, "arrived but recorded otherwise").toBe(0);
  expect(t.duplicates).toBeLessThanOrEqual(t.takeovers);
  expect(t.duplicates).toBeLessThanOrEqual(inFlight);
  // Nothing is left in the schedule that could fire again.
  expect(await ledger.pending(Date.now() - 86_400_000, 200)).toEqual({
    email: 0,
    sms: 0,
    voice: 0,
  });
});
