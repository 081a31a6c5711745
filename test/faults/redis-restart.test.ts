import { afterEach, expect, it } from "vitest";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";
import {
  bySize,
  countInState,
  deliveredCount,
  makeCheckInsDueSoon,
  printFigures,
  publishBurst,
  quietRedisErrors,
  readRecords,
  readyStatus,
  receivedByKey,
  tally,
  WorkerFleet,
  waitUntilDrained,
  waitUntilSettled,
} from "./fault-support.js";

let redis: RedisServer | undefined;
let pipeline: PipelineHarness | undefined;
let fleet: WorkerFleet | undefined;
afterEach(async () => {
  await fleet?.close();
  fleet = undefined;
  await pipeline?.close();
  pipeline = undefined;
  await redis?.stop();
  redis = undefined;
});

const PURCHASES = bySize(400, 150);
const WORKERS = 2;
const CONCURRENCY = 8;
const PROVIDER_LATENCY_MS = 100;
/** Each restart: how Redis goes down, and for how long it stays down. */
const RESTARTS = bySize(
  [
    { signal: "SIGTERM", downMs: 2_000 },
    { signal: "SIGKILL", downMs: 1_000 },
    { signal: "SIGKILL", downMs: 5_000 },
  ] as const,
  [
    { signal: "SIGTERM", downMs: 1_000 },
    { signal: "SIGKILL", downMs: 2_000 },
  ] as const,
);

it("sends every follow-up of a burst when Redis (AOF, fsync always) restarts under running workers, which reconnect by themselves", {
  timeout: bySize(300_000, 150_000),
}, async () => {
  redis = await startRedisServer({ appendonly: true, appendfsync: "always" });
  const server = redis;
  pipeline = await startPipeline("faults-redis", {
    redisUrl: server.url,
    startWorker: false,
    env: { DELIVERY_CONCURRENCY: String(CONCURRENCY), INTAKE_CONCURRENCY: "8" },
  });
  const p = pipeline;
  quietRedisErrors(p);
  await makeCheckInsDueSoon(p.configDir);
  p.sink.setReplyDelay(PROVIDER_LATENCY_MS);
  p.twilio.setResponseDelay(PROVIDER_LATENCY_MS);
  const steps = await publishBurst(p, "redis", PURCHASES);

  fleet = new WorkerFleet(p.envVars);
  const f = fleet;
  const started = Date.now();
  await Promise.all(Array.from({ length: WORKERS }, () => f.spawn()));
  const deliveredAtRestarts: number[] = [];
  const inFlightAtRestarts: number[] = [];
  for (const [index, restart] of RESTARTS.entries()) {
    // Spread the restarts over the burst: after about 15%, 40%, 65% of it.
    const threshold = Math.floor(steps.length * (0.15 + 0.25 * index));
    await eventually(
      async () => (deliveredCount(p) >= threshold ? true : undefined),
      `${threshold} messages delivered`,
      60_000,
    );
    inFlightAtRestarts.push(countInState(await readRecords(p.store, steps), "sending"));
    deliveredAtRestarts.push(deliveredCount(p));
    await server.restart(restart);
  }

  const records = await waitUntilSettled(p, steps, bySize(180_000, 60_000));
  const elapsedMs = Date.now() - started;
  await waitUntilDrained(p, 30_000);
  const t = tally(steps, records, receivedByKey(p.sink, p.twilio));
  const events = await p.events.getJobCounts("completed", "failed");
  // Readiness follows Redis: a worker may still say 503 for a moment after the last restart
  // (its job connection waits out ioredis's reconnect backoff); within seconds every one is ready.
  const ready = await Promise.all(
    f
      .live()
      .map((worker) =>
        eventually(
          async () => ((await readyStatus(worker)) === 200 ? 200 : undefined),
          "a worker to be ready again",
          15_000,
        ).catch(() => readyStatus(worker)),
      ),
  );
  printFigures("Redis restarts", {
    purchases: PURCHASES,
    steps: t.steps,
    sends: t.received,
    sent: t.sent,
    duplicates: t.duplicates,
    takeovers: t.takeovers,
    retries: t.retries,
    "error logs": f.errorLogs().length,
    restarts: RESTARTS.map((r) => `${r.signal}+${r.downMs / 1000}s`).join(" "),
    "delivered at restarts": deliveredAtRestarts.join(" "),
    "in flight at restarts": inFlightAtRestarts.join(" "),
    seconds: (elapsedMs / 1000).toFixed(1),
  });

  expect(f.crashed(), f.outputTail()).toEqual([]);
  expect(ready, "readyz of every worker after the restarts").toEqual(f.live().map(() => 200));
  expect(events).toEqual({ completed: PURCHASES, failed: 0 });
  expect(t.missing, "steps without a record").toBe(0);
  expect(t.open, "steps left scheduled or sending").toBe(0);
  expect(t.sent, "steps sent").toBe(t.steps);
  expect(t.sentButNotDelivered, "recorded sent but never arrived").toBe(0);
  expect(t.deliveredButNotSent, "arrived but recorded otherwise").toBe(0);
  // Nobody dies here: a resend can only follow a lease that ran out while Redis was away.
  expect(t.duplicates).toBeLessThanOrEqual(t.takeovers);
  expect(t.duplicates).toBeLessThanOrEqual(inFlightAtRestarts.reduce((a, b) => a + b, 0));
});
