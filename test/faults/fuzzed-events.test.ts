import type { Job } from "bullmq";
import { DateTime } from "luxon";
import { afterEach, expect, it } from "vitest";
import { loadRules } from "../../src/config/load-rules.js";
import { type FollowUpEvent, type PurchaseCompleted, parseEvent } from "../../src/domain/events.js";
import { planFollowUps } from "../../src/domain/planner.js";
import type { RuleSet } from "../../src/domain/rules.js";
import { eventJobId, followUpJobId } from "../../src/queue/names.js";
import {
  eventually,
  type PipelineHarness,
  startPipeline,
  whereWaiting,
} from "../support/pipeline-harness.js";
import {
  bySize,
  deliveryKey,
  type ExpectedStep,
  FAULTS_SEED,
  type FleetWorker,
  makeCheckInsDueSoon,
  printFigures,
  readRecords,
  readyStatus,
  receivedByKey,
  seededRandom,
  tally,
  WorkerFleet,
  waitUntilSettled,
} from "./fault-support.js";
import {
  jobName,
  junkEvent,
  malformedJson,
  sampleOf,
  validLifecycleEvent,
  validPurchase,
} from "./fuzz-events.js";

let pipeline: PipelineHarness | undefined;
let fleet: WorkerFleet | undefined;
afterEach(async () => {
  await fleet?.close();
  fleet = undefined;
  await pipeline?.close();
  pipeline = undefined;
});

const QUEUE_EVENTS = bySize(16_000, 7_500);
const HTTP_REQUESTS = bySize(4_000, 2_500);
/** Shares of the queue's events: purchases (each planned and sent), refunds and opt-outs, junk. */
const PURCHASE_SHARE = bySize(0.25, 0.15);
const LIFECYCLE_SHARE = 0.1;
const HTTP_BODY_LIMIT = 65_536;
const API_TOKEN = "fuzz-api-token-0123456789";

/** One event put on the queue: its job, and what the contract says of it. */
interface QueuedEvent {
  readonly name: string;
  readonly data: unknown;
  /** The event as validated, when the contract accepts it as the intake reads it. */
  readonly parsed?: FollowUpEvent;
  jobId?: string;
}

/**
 * The event as the intake processor reads a job: data without a `type` takes the job name as its
 * type (mirrors createIntakeProcessor), after the JSON round trip BullMQ puts data through.
 */
function asIntakeSees(name: string, data: unknown): unknown {
  const json: unknown = JSON.parse(JSON.stringify(data ?? null));
  return json && typeof json === "object" && !Array.isArray(json) && !("type" in json)
    ? { type: name, ...json }
    : json;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Whether a JSON text has a key fastify refuses as prototype poisoning. */
function hasPoisonedKey(body: string): boolean {
  return /"__proto__"\s*:|"constructor"\s*:\s*\{[^}]*"prototype"/.test(body);
}

it("keeps every bad event with its reason, plans every good one, and never crashes, over 10,000 fuzzed events by queue and HTTP", {
  timeout: bySize(420_000, 150_000),
}, async () => {
  pipeline = await startPipeline("faults-fuzz", {
    startWorker: false,
    env: {
      INTAKE_CONCURRENCY: "8",
      DELIVERY_CONCURRENCY: "8",
      // Nothing is killed here: a lock long enough that a CPU-starved CI machine (the oracle plans
      // every purchase in the test process at the end) does not see BullMQ lose locks it renews.
      JOB_LOCK_MS: "15000",
      API_TOKEN,
      HTTP_BODY_LIMIT: String(HTTP_BODY_LIMIT),
    },
  });
  const p = pipeline;
  await makeCheckInsDueSoon(p.configDir);
  const loaded = await loadRules(p.configDir);
  if (!loaded.ok) throw new Error("the test rules do not load");
  const rules = loaded.rules;
  // Printed first: a run that fails while generating never reaches its summary, which has it too.
  console.log(`fuzzed events: FAULTS_SEED=${FAULTS_SEED} replays this run`);
  const random = seededRandom(FAULTS_SEED);
  let seed = FAULTS_SEED;
  const nextSeed = () => ++seed;

  // --- generate the queue's events: a quarter purchases, a tenth refunds and opt-outs, the rest junk
  const purchases = sampleOf(validPurchase("q"), QUEUE_EVENTS, nextSeed());
  const lifecycle = sampleOf(validLifecycleEvent("q"), QUEUE_EVENTS, nextSeed());
  const junk = sampleOf(junkEvent("q"), QUEUE_EVENTS, nextSeed());
  const names = sampleOf(jobName, QUEUE_EVENTS, nextSeed());
  const queued: QueuedEvent[] = [];
  const validIds = new Set<string>();
  for (let i = 0; i < QUEUE_EVENTS; i++) {
    const roll = random();
    const isJunk = roll >= PURCHASE_SHARE + LIFECYCLE_SHARE;
    const make = roll < PURCHASE_SHARE ? purchases[i] : isJunk ? junk[i] : lifecycle[i];
    const data = make?.(i);
    const name = isJunk ? (names[i] ?? "") : String((data as { type?: unknown }).type);
    let parsed = parseEvent(asIntakeSees(name, data));
    // Junk can turn out valid (its job name supplies the type a mutation removed), and two such
    // can share an id a mutation set ("12.345"): each valid event gets an id of its own.
    if (parsed.ok && validIds.has(parsed.event.id) && isObject(data)) {
      data.id = `${parsed.event.id}-${i}`;
      parsed = parseEvent(asIntakeSees(name, data));
    }
    if (parsed.ok) validIds.add(parsed.event.id);
    queued.push({ name, data, ...(parsed.ok && { parsed: parsed.event }) });
  }

  fleet = new WorkerFleet(p.envVars);
  const worker = await fleet.spawn();
  const started = Date.now();
  const readiness: number[] = [];

  // --- the queue: everything through a raw BullMQ queue (the publisher would refuse the junk)
  const seenIds = new Set<string>();
  for (let i = 0; i < queued.length; i += 250) {
    const chunk = queued.slice(i, i + 250);
    const jobs = await p.events.addBulk(
      chunk.map((event) => {
        if (!event.parsed) return { name: event.name, data: event.data };
        const id = event.parsed.id;
        if (seenIds.has(id)) throw new Error(`the generators made event id ${id} twice`);
        seenIds.add(id);
        return { name: event.name, data: event.data, opts: { jobId: eventJobId(id) } };
      }),
    );
    jobs.forEach((job: Job, j) => {
      const event = chunk[j];
      if (event) event.jobId = job.id;
    });
    if (i % 2_000 === 0) readiness.push(await readyStatus(worker));
  }

  // --- HTTP: mostly authorised JSON events; some malformed, unauthorised, mistyped or oversize
  const http = await fuzzHttp(worker, random, nextSeed, readiness);

  await eventually(
    async () => {
      const counts = await p.events.getJobCounts("waiting", "active", "delayed", "prioritized");
      return Object.values(counts).every((n) => n === 0) ? true : undefined;
    },
    "the purchase-events queue to drain",
    bySize(300_000, 90_000),
  );
  const intakeMs = Date.now() - started;

  // --- the oracle: what each valid purchase must have been planned, by the pure planner
  const validPurchases: PurchaseCompleted[] = [];
  for (const { parsed } of queued) {
    if (parsed?.type === "purchase.completed") validPurchases.push(parsed);
  }
  for (const body of http.accepted) {
    const parsed = parseEvent(body);
    if (parsed.ok && parsed.event.type === "purchase.completed") validPurchases.push(parsed.event);
  }
  const { due, later } = expectedSteps(validPurchases, rules);
  const records = await waitUntilSettled(p, due, bySize(300_000, 90_000));
  const elapsedMs = Date.now() - started;

  // Steps due later wait: in the compact schedule, or as delayed jobs when due within the
  // promotion horizon; nothing else of a valid purchase has a record.
  const laterRecords = await readRecords(p.store, later);
  const laterNotScheduled = later.filter(
    (s) => laterRecords.get(`${s.eventId} ${s.stepId}`)?.state !== "scheduled",
  );
  const laterStates = await Promise.all(
    later.map(async (s) => {
      const where = await whereWaiting(p, s.eventId, s.stepId);
      return where === "job" ? p.followUps.getJobState(followUpJobId(s.eventId, s.stepId)) : where;
    }),
  );
  const unexpectedRecords: string[] = [];
  const plannedIds = new Set([...due, ...later].map((s) => `${s.eventId} ${s.stepId}`));
  for (let i = 0; i < validPurchases.length; i += 500) {
    await Promise.all(
      validPurchases.slice(i, i + 500).map(async (event) => {
        for (const stepId of (await p.store.allStepRecords(event.id)).keys()) {
          if (!plannedIds.has(`${event.id} ${stepId}`))
            unexpectedRecords.push(`${event.id} ${stepId}`);
        }
      }),
    );
  }

  // --- every bad event kept with its reason; every good one done
  const failedKey = p.events.keys.failed;
  const completedKey = p.events.keys.completed;
  const outcomes = await p.redis
    .multi(
      queued.flatMap((event) => [
        ["zscore", failedKey, event.jobId ?? ""],
        ["zscore", completedKey, event.jobId ?? ""],
        ["hget", p.events.toKey(event.jobId ?? ""), "failedReason"],
        ["exists", p.events.toKey(event.jobId ?? "")],
      ]),
    )
    .exec();
  const badKept: string[] = [];
  const badNotKept: string[] = [];
  const goodNotDone: string[] = [];
  queued.forEach((event, i) => {
    const [failed, completed, reason, exists] = [0, 1, 2, 3].map((k) => outcomes?.[4 * i + k]?.[1]);
    if (event.parsed) {
      // Done: completed, or completed and already cleaned up (completed event jobs are kept
      // for one hour and at most 1,000, as they carry personal data; the records are checked below).
      const finished = (completed !== null && completed !== undefined) || exists === 0;
      if (failed !== null || !finished) goodNotDone.push(`${event.jobId}: ${reason}`);
    } else if (failed !== null && typeof reason === "string" && reason.startsWith("invalid event:"))
      badKept.push(reason);
    else badNotKept.push(`${event.jobId} (${failed === null ? "not failed" : reason})`);
  });
  const unauthorisedFound = (
    await Promise.all(http.refusedIds.map((id) => p.events.getJob(eventJobId(id))))
  ).filter(Boolean).length;

  const metrics = await (await fetch(`${worker.httpUrl}/metrics`)).text();
  const invalidCounted = Number(/^followups_events_invalid_total (\d+)/m.exec(metrics)?.[1] ?? NaN);
  readiness.push(await readyStatus(worker));
  const t = tally(due, records, receivedByKey(p.sink, p.twilio));
  const reasons = new Map<string, number>();
  for (const s of due) {
    const r = records.get(`${s.eventId} ${s.stepId}`);
    if (r && r.state !== "sent") {
      const key = `${r.state}: ${r.reason?.code ?? ""}`;
      reasons.set(key, (reasons.get(key) ?? 0) + 1);
    }
  }
  const validQueued = queued.filter((e) => e.parsed).length;
  printFigures("fuzzed events", {
    events: queued.length + http.sent,
    "queue events": queued.length,
    "queue invalid": queued.length - validQueued,
    "queue valid": validQueued,
    "HTTP requests": http.sent,
    "HTTP statuses": [...http.statuses.entries()].map(([s, n]) => `${s}:${n}`).join(" "),
    "valid purchases": validPurchases.length,
    "steps due": due.length,
    "steps later": later.length,
    sends: t.received,
    duplicates: t.duplicates,
    takeovers: t.takeovers,
    retries: t.retries,
    "error logs": fleet.errorLogs().length,
    "intake s": (intakeMs / 1000).toFixed(1),
    seconds: (elapsedMs / 1000).toFixed(1),
  });
  if (reasons.size > 0) console.table(Object.fromEntries(reasons));

  expect(fleet.crashed(), fleet.outputTail()).toEqual([]);
  expect(fleet.errorLogs(), "errors logged by the worker").toEqual([]);
  expect(
    readiness.every((status) => status === 200),
    `readyz: ${readiness}`,
  ).toBe(true);
  expect(queued.length + http.sent).toBeGreaterThanOrEqual(10_000);
  // The oracle had something to check: a planner that planned nothing would pass all below.
  expect(validPurchases.length, "valid purchases").toBeGreaterThan(
    (QUEUE_EVENTS * PURCHASE_SHARE) / 2,
  );
  expect(due.length, "steps due").toBeGreaterThan(0);
  expect(later.length, "steps due later").toBeGreaterThan(0);
  expect(t.sent, "due steps sent").toBeGreaterThan(0);
  expect(http.mismatches, "HTTP answers other than the contract says").toEqual([]);
  expect(badNotKept, "bad events not kept with an `invalid event:` reason").toEqual([]);
  expect(badKept.length).toBe(queued.length - validQueued);
  expect(goodNotDone, "valid events not completed").toEqual([]);
  expect(invalidCounted).toBe(queued.length - validQueued);
  expect(unauthorisedFound, "events enqueued without a valid token").toBe(0);
  expect(t.missing, "planned steps without a record").toBe(0);
  expect(t.open, "due steps left scheduled or sending").toBe(0);
  expect(laterNotScheduled, "later steps not scheduled").toEqual([]);
  expect(
    laterStates.filter((state) => state !== "delayed" && state !== "schedule"),
    "later steps neither in the schedule nor a delayed job",
  ).toEqual([]);
  expect(unexpectedRecords, "records of steps the planner did not plan").toEqual([]);
  expect(t.duplicates).toBe(0);
  expect(t.sentButNotDelivered, "recorded sent but never arrived").toBe(0);
  expect(t.deliveredButNotSent, "arrived but recorded otherwise").toBe(0);
});

/** Steps the planner gives each purchase (a new customer each), split into due now and later. */
function expectedSteps(
  events: readonly PurchaseCompleted[],
  rules: RuleSet,
): { due: ExpectedStep[]; later: ExpectedStep[] } {
  const now = DateTime.utc();
  const due: ExpectedStep[] = [];
  const later: ExpectedStep[] = [];
  for (const event of events) {
    const plan = planFollowUps(event, rules, { previousPurchases: 0 }, now);
    for (const step of plan.steps) {
      const expected: ExpectedStep = {
        eventId: event.id,
        stepId: step.stepId,
        channel: step.channel,
        deliveryKey: deliveryKey(step.channel, event.id, step.stepId, event.customer.phone),
      };
      // An overdue step is planned for "now"; anything due within the next minute is waited for.
      if (Date.parse(step.dueAt) <= now.toMillis() + 60_000) due.push(expected);
      else later.push(expected);
    }
  }
  return { due, later };
}

interface HttpFuzzResult {
  sent: number;
  statuses: Map<number, number>;
  /** Bodies the endpoint accepted (202). */
  accepted: unknown[];
  /** Ids of valid events sent without a valid token, with a wrong type, or too large. */
  refusedIds: string[];
  mismatches: string[];
}

/** POSTs fuzzed requests to /v1/events, checking each answer against the contract. */
async function fuzzHttp(
  worker: FleetWorker,
  random: () => number,
  nextSeed: () => number,
  readiness: number[],
): Promise<HttpFuzzResult> {
  const purchases = sampleOf(validPurchase("h"), HTTP_REQUESTS, nextSeed());
  const lifecycle = sampleOf(validLifecycleEvent("h"), HTTP_REQUESTS, nextSeed());
  const junk = sampleOf(junkEvent("h"), HTTP_REQUESTS, nextSeed());
  const malformed = sampleOf(malformedJson, HTTP_REQUESTS, nextSeed());
  const result: HttpFuzzResult = {
    sent: 0,
    statuses: new Map(),
    accepted: [],
    refusedIds: [],
    mismatches: [],
  };
  const requests = Array.from({ length: HTTP_REQUESTS }, (_, i) => {
    const roll = random();
    const auth = { authorization: `Bearer ${API_TOKEN}` };
    const json = { "content-type": "application/json" };
    const purchase = purchases[i]?.(i) ?? {};
    if (roll < 0.7) {
      const pick = random();
      const body = (pick < 0.2 ? purchase : pick < 0.3 ? lifecycle[i]?.(i) : junk[i]?.(i)) ?? null;
      return { headers: { ...auth, ...json }, body: JSON.stringify(body), value: body as unknown };
    }
    const refused = (headers: Record<string, string>, body: string) => {
      result.refusedIds.push(String(purchase.id ?? ""));
      return { headers, body, value: undefined, refused: true };
    };
    if (roll < 0.8)
      return { headers: { ...auth, ...json }, body: malformed[i] ?? "{", value: undefined };
    if (roll < 0.86) return refused(json, JSON.stringify(purchase));
    if (roll < 0.92)
      return refused(
        { authorization: `Bearer ${API_TOKEN.slice(0, -1)}x`, ...json },
        JSON.stringify(purchase),
      );
    if (roll < 0.96)
      return refused({ ...auth, "content-type": "text/plain" }, JSON.stringify(purchase));
    const padded = { ...purchase, padding: "p".repeat(HTTP_BODY_LIMIT) };
    return refused({ ...auth, ...json }, JSON.stringify(padded));
  });

  const expectedStatus = (request: (typeof requests)[number]): number => {
    const h = request.headers as Record<string, string>;
    if (h.authorization !== `Bearer ${API_TOKEN}`) return 401;
    if (h["content-type"] !== "application/json") return 415;
    if (Buffer.byteLength(request.body) > HTTP_BODY_LIMIT) return 413;
    if (request.value === undefined) return 400;
    return parseEvent(request.value).ok ? 202 : 400;
  };

  for (let i = 0; i < requests.length; i += 16) {
    await Promise.all(
      requests.slice(i, i + 16).map(async (request, j) => {
        const response = await fetch(`${worker.httpUrl}/v1/events`, {
          method: "POST",
          headers: request.headers,
          body: request.body,
        });
        const answer = (await response.json().catch(() => ({}))) as {
          problems?: { path: string; message: string }[];
          error?: string;
        };
        result.sent++;
        result.statuses.set(response.status, (result.statuses.get(response.status) ?? 0) + 1);
        const expected = expectedStatus(request);
        const poisoned = hasPoisonedKey(request.body);
        const ok =
          response.status === expected ||
          // fastify refuses prototype-poisoning keys before the contract is consulted.
          (poisoned && response.status === 400);
        const wantsProblems = expected === 400 && request.value !== undefined && !poisoned;
        if (!ok || (wantsProblems && !(answer.problems && answer.problems.length > 0))) {
          result.mismatches.push(
            `request ${i + j}: expected ${expected}, got ${response.status} ${JSON.stringify(answer).slice(0, 300)} for ${request.body.slice(0, 200)}`,
          );
        }
        if (response.status === 202) result.accepted.push(request.value);
      }),
    );
    if (i % 512 === 0) readiness.push(await readyStatus(worker));
  }
  return result;
}
