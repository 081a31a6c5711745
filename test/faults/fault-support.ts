import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { parseDocument } from "yaml";
import type { Channel } from "../../src/domain/events.js";
import { followUpJobId } from "../../src/queue/names.js";
import type { FollowUpStore } from "../../src/store/follow-up-store.js";
import { type StepRecord, TERMINAL_STATES } from "../../src/store/step-record.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { eventually, type PipelineHarness } from "../support/pipeline-harness.js";
import { findFreePort } from "../support/redis-server.js";
import type { SmtpSink } from "../support/smtp-sink.js";
import type { TwilioFake } from "../support/twilio-fake.js";
import { spawnWorker, type WorkerProcess } from "../support/worker-process.js";

/** `FAULTS_SCALE=ci` runs every scenario small (≤ 2 minutes in all); anything else runs them full. */
export const FAULTS_SCALE: "full" | "ci" = process.env.FAULTS_SCALE === "ci" ? "ci" : "full";

/** The size of a scenario parameter at the current scale. */
export function bySize<T>(full: T, ci: T): T {
  return FAULTS_SCALE === "ci" ? ci : full;
}

/** Seed of the run's random choices (kill moments, fuzz); set FAULTS_SEED to replay a run. */
export const FAULTS_SEED = Number(process.env.FAULTS_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** A small seeded generator (mulberry32), so kill and restart moments can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Stops the test for `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Makes the big-ticket check-in SMS due one hour after the purchase (instead of three months),
 * so a burst of purchases from two hours ago exercises both the SMTP and the Twilio path.
 */
export async function makeCheckInsDueSoon(configDir: string): Promise<void> {
  const file = path.join(configDir, "rules.yaml");
  const doc = parseDocument(await readFile(file, "utf8"));
  const rules = doc.getIn(["rules"]) as { items: { get(key: string): unknown }[] };
  const index = rules.items.findIndex((rule) => rule.get("id") === "big-ticket");
  if (index < 0) throw new Error("the shipped rules have no big-ticket rule any more");
  doc.setIn(["rules", index, "steps", 1, "delay"], "PT1H");
  if (doc.getIn(["rules", index, "steps", 1, "kind"]) !== "check-in")
    throw new Error("big-ticket's second step is no longer the check-in");
  await writeFile(file, doc.toString());
}

/** One step a test expects, and the key its message is recognised by at the sink or the fake. */
export interface ExpectedStep {
  readonly eventId: string;
  readonly stepId: string;
  readonly channel: Channel;
  /** `email <follow-up id>` (the X-Followup-Id header) or `sms <E.164 number>`. */
  readonly deliveryKey: string;
}

/** The key a delivered message is counted under. */
export function deliveryKey(channel: Channel, eventId: string, stepId: string, phone?: string) {
  return channel === "email"
    ? `email ${followUpJobId(eventId, stepId)}`
    : `${channel} ${phone ?? "(no phone)"}`;
}

/** ISO instant `hours` ago, as publishers write it. */
export function hoursAgo(hours: number): string {
  return (
    DateTime.utc().minus({ hours }).startOf("second").toISO({ suppressMilliseconds: true }) ?? ""
  );
}

/**
 * Publishes `count` TV purchases (by default from two hours ago), each with its own customer,
 * address and (fictional, valid) phone number: each gets a thank-you email and a check-in SMS.
 */
export async function publishBurst(
  p: PipelineHarness,
  label: string,
  count: number,
  occurredAt = hoursAgo(2),
  /** The first phone number's index: a second burst in one scenario texts other numbers. */
  firstPhone = 0,
): Promise<ExpectedStep[]> {
  if (firstPhone + count > 10_000) throw new Error("at most 10,000 distinct phone numbers");
  const expected: ExpectedStep[] = [];
  const inputs = Array.from({ length: count }, (_, i) => {
    const id = `evt-${label}-${i}`;
    const digits = String(firstPhone + i).padStart(4, "0");
    const phone = `+44207946${digits}`;
    expected.push(
      {
        eventId: id,
        stepId: "big-ticket.thank-you",
        channel: "email",
        deliveryKey: deliveryKey("email", id, "big-ticket.thank-you"),
      },
      {
        eventId: id,
        stepId: "big-ticket.check-in",
        channel: "sms",
        deliveryKey: deliveryKey("sms", id, "big-ticket.check-in", phone),
      },
    );
    return purchaseInput({
      id,
      orderId: `ord-${id}`,
      occurredAt,
      customer: {
        id: `cus-${id}`,
        email: `${id}@example.com`,
        phone: `+44 20 7946 ${digits}`,
      },
      items: [item("televisions", "899.00")],
    });
  });
  for (let i = 0; i < inputs.length; i += 50) {
    await Promise.all(inputs.slice(i, i + 50).map((input) => p.publisher.publish(input as never)));
  }
  return expected;
}

/** Step records of the expected steps, keyed `eventId stepId` (undefined: no record at all). */
export async function readRecords(
  store: FollowUpStore,
  steps: readonly ExpectedStep[],
): Promise<Map<string, StepRecord | undefined>> {
  const byEvent = new Map<string, string[]>();
  for (const step of steps)
    byEvent.set(step.eventId, [...(byEvent.get(step.eventId) ?? []), step.stepId]);
  const records = new Map<string, StepRecord | undefined>();
  const events = [...byEvent.entries()];
  for (let i = 0; i < events.length; i += 500) {
    await Promise.all(
      events.slice(i, i + 500).map(async ([eventId, stepIds]) => {
        const found = await store.stepRecords(eventId, stepIds);
        for (const [stepId, record] of found) records.set(`${eventId} ${stepId}`, record);
      }),
    );
  }
  return records;
}

/** How many of the records are in `state` (e.g. `sending`: sends in flight right now). */
export function countInState(records: Map<string, StepRecord | undefined>, state: string): number {
  let n = 0;
  for (const record of records.values()) if (record?.state === state) n++;
  return n;
}

/**
 * Waits until every expected step has a terminal state; returns the records. Terminal states are
 * final, so only the steps still open are read again (a big burst is not re-read every poll).
 */
export async function waitUntilSettled(
  p: PipelineHarness,
  steps: readonly ExpectedStep[],
  timeoutMs: number,
): Promise<Map<string, StepRecord | undefined>> {
  const deadline = Date.now() + timeoutMs;
  const records = new Map<string, StepRecord | undefined>();
  let open = steps;
  for (;;) {
    const found = await readRecords(p.store, open);
    for (const [key, record] of found) records.set(key, record);
    open = open.filter((s) => {
      const record = records.get(`${s.eventId} ${s.stepId}`);
      return !record || !TERMINAL_STATES.has(record.state);
    });
    if (open.length === 0) return records;
    if (Date.now() > deadline) {
      const sample = open.slice(0, 5).map((s) => [s, records.get(`${s.eventId} ${s.stepId}`)]);
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for every step to reach a terminal state; ` +
          `${open.length} still open, e.g. ${JSON.stringify(sample)}`,
      );
    }
    await sleep(Math.min(500, 50 + open.length / 10));
  }
}

/**
 * Silences the test's own Redis clients while Redis is down on purpose: without a listener, BullMQ
 * queues print every reconnection error. (The publisher's queue is private; reached by a cast.)
 */
export function quietRedisErrors(p: PipelineHarness): void {
  const ignore = () => undefined;
  p.redis.on("error", ignore);
  p.events.on("error", ignore);
  p.followUps.on("error", ignore);
  (
    p.publisher as unknown as { queue?: { on(event: "error", listener: () => void): void } }
  ).queue?.on("error", ignore);
}

/** Waits until the follow-ups queue holds no job that could still run. */
export async function waitUntilDrained(p: PipelineHarness, timeoutMs: number): Promise<void> {
  await eventually(
    async () => {
      const counts = await p.followUps.getJobCounts("waiting", "delayed", "active", "prioritized");
      return Object.values(counts).every((n) => n === 0) ? true : undefined;
    },
    "the follow-ups queue to drain",
    timeoutMs,
  );
}

/** Messages received so far, counted by delivery key. */
export function receivedByKey(sink: SmtpSink, twilio: TwilioFake): Map<string, number> {
  const received = new Map<string, number>();
  const add = (key: string) => received.set(key, (received.get(key) ?? 0) + 1);
  for (const message of sink.messages) {
    const id = message.parsed.headers.get("x-followup-id");
    add(`email ${typeof id === "string" ? id : "(none)"}`);
  }
  for (const message of twilio.messages) add(`sms ${message.to}`);
  return received;
}

/** Messages received by the sink and the fake so far. */
export function deliveredCount(p: PipelineHarness): number {
  return p.sink.messages.length + p.twilio.messages.length;
}

/** What became of a set of steps, as compared with what the sink and the fake received. */
export interface Tally {
  steps: number;
  sent: number;
  failed: number;
  skipped: number;
  cancelled: number;
  /** Steps still scheduled or sending. */
  open: number;
  /** Steps without any record. */
  missing: number;
  /** Messages received for these steps. */
  received: number;
  /** Messages received beyond one per sent step. */
  duplicates: number;
  /** Messages received for a step recorded as not sent (failed, skipped, cancelled, open). */
  deliveredButNotSent: number;
  /** Steps recorded as sent whose message never arrived. */
  sentButNotDelivered: number;
  /** Sum of the records' `r`: sends taken over from a vanished sender. */
  takeovers: number;
  /** Sum of attempts beyond the first (transient failures retried). */
  retries: number;
}

/** Compares the records of `steps` with the messages received. */
export function tally(
  steps: readonly ExpectedStep[],
  records: Map<string, StepRecord | undefined>,
  received: Map<string, number>,
): Tally {
  const t: Tally = {
    steps: steps.length,
    sent: 0,
    failed: 0,
    skipped: 0,
    cancelled: 0,
    open: 0,
    missing: 0,
    received: 0,
    duplicates: 0,
    deliveredButNotSent: 0,
    sentButNotDelivered: 0,
    takeovers: 0,
    retries: 0,
  };
  const sentPerKey = new Map<string, number>();
  const keys = new Set<string>();
  for (const step of steps) {
    keys.add(step.deliveryKey);
    const record = records.get(`${step.eventId} ${step.stepId}`);
    if (!record) {
      t.missing++;
      continue;
    }
    t.takeovers += record.takeovers;
    t.retries += Math.max(0, record.attempts - 1);
    if (record.state === "sent") {
      t.sent++;
      sentPerKey.set(step.deliveryKey, (sentPerKey.get(step.deliveryKey) ?? 0) + 1);
    } else if (
      record.state === "failed" ||
      record.state === "skipped" ||
      record.state === "cancelled"
    )
      t[record.state]++;
    else t.open++;
  }
  for (const key of keys) {
    const got = received.get(key) ?? 0;
    const sent = sentPerKey.get(key) ?? 0;
    t.received += got;
    if (got > sent) {
      if (sent === 0) t.deliveredButNotSent += got;
      else t.duplicates += got - sent;
    } else t.sentButNotDelivered += sent - got;
  }
  return t;
}

/** Prints a scenario's figures as one table row per scenario. */
export function printFigures(scenario: string, figures: Record<string, number | string>): void {
  console.log(`\nfault scenario "${scenario}" (scale ${FAULTS_SCALE}, seed ${FAULTS_SEED})`);
  console.table({ [scenario]: figures });
}

/** A spawned `followups worker` with its own HTTP port. */
export interface FleetWorker {
  readonly process: WorkerProcess;
  readonly httpUrl: string;
  /** Its /readyz answered 200 once. */
  ready: boolean;
  killed: boolean;
}

/** Worker processes of one scenario: spawned, killed, replaced and watched for crashes. */
export class WorkerFleet {
  /** Every process started, live or not, for diagnostics. */
  readonly all: FleetWorker[] = [];

  constructor(private readonly envVars: Record<string, string>) {}

  /** Starts a worker and resolves once its /readyz answers 200. */
  async spawn(extraEnv: Record<string, string> = {}): Promise<FleetWorker> {
    const port = await findFreePort();
    const worker: FleetWorker = {
      process: spawnWorker({ ...this.envVars, ...extraEnv, HTTP_PORT: String(port) }),
      httpUrl: `http://127.0.0.1:${port}`,
      ready: false,
      killed: false,
    };
    this.all.push(worker);
    await eventually(
      async () => {
        if (worker.process.child.exitCode !== null)
          throw new Error(`worker exited during start:\n${worker.process.output().slice(-2000)}`);
        return (await readyStatus(worker)) === 200 ? true : undefined;
      },
      "a worker to be ready",
      30_000,
    );
    worker.ready = true;
    return worker;
  }

  /** Workers not killed by the test (whether or not they are still running). */
  live(): FleetWorker[] {
    return this.all.filter((w) => !w.killed);
  }

  /** SIGKILLs one live, started worker chosen with `random` (waiting for one); returns it. */
  async killOne(random: () => number): Promise<FleetWorker> {
    const candidates = await eventually(
      async () => {
        const ready = this.live().filter((w) => w.ready);
        return ready.length > 0 ? ready : undefined;
      },
      "a running worker to kill",
      30_000,
    );
    const victim = candidates[Math.floor(random() * candidates.length)];
    if (!victim) throw new Error("no live worker to kill");
    victim.killed = true;
    await victim.process.kill9();
    return victim;
  }

  /** Workers that ended without the test killing them (a crash). */
  crashed(): FleetWorker[] {
    return this.live().filter(
      (w) => w.process.child.exitCode !== null || w.process.child.signalCode !== null,
    );
  }

  /** Log lines at level error or above (pino level ≥ 50) of every worker, as written. */
  errorLogs(): string[] {
    return this.all.flatMap((w) =>
      w.process
        .output()
        .split("\n")
        .filter((line) => {
          try {
            return ((JSON.parse(line) as { level?: number }).level ?? 0) >= 50;
          } catch {
            return line.trim() !== "";
          }
        }),
    );
  }

  /** The last lines each worker wrote, for a failure message. */
  outputTail(chars = 3000): string {
    return this.all
      .map(
        (w, i) =>
          `--- worker ${i}${w.killed ? " (killed)" : ""}:\n${w.process.output().slice(-chars)}`,
      )
      .join("\n");
  }

  /** Ends every process (SIGKILL: teardown need not be graceful). */
  async close(): Promise<void> {
    await Promise.all(this.all.map((w) => w.process.kill9()));
  }
}

/** GET /readyz of a worker: the status, or 0 when it does not answer. */
export async function readyStatus(worker: FleetWorker): Promise<number> {
  try {
    const response = await fetch(`${worker.httpUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
    await response.body?.cancel();
    return response.status;
  } catch {
    return 0;
  }
}
