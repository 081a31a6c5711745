import { randomBytes } from "node:crypto";
import { DateTime } from "luxon";
import { followUpJobId } from "../src/queue/names.js";
import type { Providers } from "./arrival-sink.js";
import { sleep } from "./processes.js";
import { benchPhone, CHUNK, DUE_STEP, dueAtPurchase, eventJobs } from "./purchases.js";
import { type IntakeSession, pendingFollowUps } from "./schedule-bench.js";

export interface LatencyResult {
  readonly pending: number;
  readonly messages: number;
  readonly email: number;
  readonly sms: number;
  readonly spreadSeconds: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly minMs: number;
}

/**
 * Due → provider-accepted latency: purchases whose follow-up falls due at a known instant
 * (alternately a thank-you email and a check-in SMS, evenly spread over `spreadMs`, the first
 * `leadMs` from now) go through intake while the big backlog waits; each latency is the arrival
 * at the loopback provider minus the step's due instant as recorded in its step record.
 */
export async function dueLatency(
  session: IntakeSession,
  providers: Providers,
  options: { messages: number; spreadMs: number; leadMs: number },
): Promise<LatencyResult> {
  const pending = await pendingFollowUps(session.redis, session.prefix);
  const tag = `lat${randomBytes(3).toString("hex")}`;
  const first = DateTime.utc().plus({ milliseconds: options.leadMs });
  const wanted = new Map<string, { eventId: string; stepId: string }>();
  const events = [];
  for (let i = 0; i < options.messages; i++) {
    const channel = i % 2 === 0 ? "email" : "sms";
    const due = first.plus({ milliseconds: Math.round((i * options.spreadMs) / options.messages) });
    const event = dueAtPurchase(tag, 900_000 + i, channel, due);
    const eventId = String(event.id);
    const stepId = DUE_STEP[channel];
    wanted.set(channel === "email" ? followUpJobId(eventId, stepId) : benchPhone(900_000 + i), {
      eventId,
      stepId,
    });
    events.push(event);
  }
  for (let i = 0; i < events.length; i += CHUNK)
    await session.input.addBulk(eventJobs(events.slice(i, i + CHUNK)));
  const deadline = Date.now() + options.leadMs + options.spreadMs + 60_000;
  let arrived = providers.arrivals().filter((a) => wanted.has(a.key));
  while (arrived.length < options.messages) {
    if (Date.now() > deadline)
      throw new Error(`latency: ${arrived.length} of ${options.messages} follow-ups arrived`);
    await sleep(100);
    arrived = providers.arrivals().filter((a) => wanted.has(a.key));
  }
  const latencies: number[] = [];
  for (const arrival of arrived) {
    const at = wanted.get(arrival.key);
    if (!at) continue;
    const record = (await session.store.stepRecords(at.eventId, [at.stepId])).get(at.stepId);
    if (!record) throw new Error(`latency: no step record for ${at.eventId} ${at.stepId}`);
    latencies.push(arrival.at - record.dueAt);
  }
  latencies.sort((a, b) => a - b);
  const pick = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)] ?? 0;
  return {
    pending,
    messages: latencies.length,
    email: Math.ceil(options.messages / 2),
    sms: Math.floor(options.messages / 2),
    spreadSeconds: options.spreadMs / 1000,
    p50Ms: pick(0.5),
    p90Ms: pick(0.9),
    p99Ms: pick(0.99),
    maxMs: latencies.at(-1) ?? 0,
    minMs: latencies[0] ?? 0,
  };
}
