import { idHash, queueTag, shardTag } from "../store/keys.js";

/** The input queue publishers write to; job name = event type, job data = the event (contract v1). */
export const PURCHASE_EVENTS_QUEUE = "purchase-events";
/**
 * How intake's failed reason for an invalid event begins: it was refused before its id was taken,
 * so it names no event (a corrected one may be published under its id).
 */
export const INVALID_EVENT_REASON = "invalid event: ";
/**
 * How intake's failed reason for an event under an id taken by another event begins: the id is
 * that one's, so the refused job names no event either (the one owning the id may be published
 * again, and is a repeat).
 */
export const REUSED_ID = "event id reused with different content";
/** One delayed job per planned step. */
export const FOLLOW_UPS_QUEUE = "follow-ups";
/** Owners' report runs, fed by one BullMQ job scheduler per owner. */
export const OWNER_REPORTS_QUEUE = "owner-reports";
/** Alert emails to owners about unhappy replies: one job per alert (or bundle of alerts). */
export const OWNER_ALERTS_QUEUE = "owner-alerts";
/** Job name of an alert. */
export const OWNER_ALERT_JOB = "owner-alert";
/** Job name of an owner's email about a channel's spend reaching 80 % or 100 % of its budget. */
export const BUDGET_ALERT_JOB = "budget-alert";
/**
 * A thank-you that joined an earlier purchase's (rules' `coalesce`) falls due this long after the
 * leader's, and waits again while that one has not gone yet.
 */
export const COALESCED_AFTER_MS = 15 * 60 * 1000;

/**
 * The BullMQ prefix of a queue. On one Redis it is QUEUE_PREFIX (`followups:purchase-events:…`).
 * On a Redis Cluster all keys of a queue must share a slot, so the prefix is a hash tag: the
 * queues' one (queueTag, `{followups}`) for the input queue and the owners' queues (the global
 * keys have a tag of their own, on another master: globalTag), and for the follow-ups
 * queue its shard's (shardTag: `{followups:3}`, say), beside the records its jobs work on: every shard has a
 * follow-ups queue of its own. Shard 0's keeps the plain prefix on one Redis (as before shards);
 * other shards' take their hash tag there too.
 */
export function queuePrefix(
  prefix: string,
  queue: string,
  cluster: boolean,
  shard = 0,
  shards = 1,
): string {
  if (queue === FOLLOW_UPS_QUEUE && (cluster || shard > 0)) return shardTag(prefix, shard, shards);
  return cluster ? queueTag(prefix) : prefix;
}

/** Job name of a report run. */
export const OWNER_REPORT_JOB = "owner-report";

/**
 * Lean data of a follow-up job: which event and which step. Everything else (contact, items,
 * state) lives once per event in the follow-up store, shared by that event's steps.
 */
export interface FollowUpJobData {
  /** Event id. */
  readonly e: string;
  /** Step id, `<ruleId>.<stepId>`. */
  readonly s: string;
}

/**
 * Deterministic job id of a step: the same event and step always give the same id, so a
 * re-published event schedules nothing new. Hashed so any event id (even one with ':') is safe
 * for BullMQ. Fifteen characters (84 bits) keep the job's `opts` (id and delay) within Redis's
 * 64-byte listpack limit for any delay up to 30 years, which halves the job hash (about 300 B
 * instead of 640 B per pending follow-up).
 */
export function followUpJobId(eventId: string, stepId: string): string {
  return `f${idHash(`${eventId}\u0000${stepId}`).slice(0, 14)}`;
}

/**
 * The id of the job that sends (or sent) a step's latest message, from its follow-up id
 * (followUpJobId) and its record's requeue counts: its own for the first send, a resend's
 * (`<id>-r<n>`) or a retry's (`<id>-q<n>`) after one; for a step both resent and retried, that of
 * its latest requeue when the record tells (`lastRequeue`), else undefined. A send's cap slot and
 * its charge are filed under this id.
 */
export function latestSendJobId(
  followUpId: string,
  record: {
    readonly resends: number;
    readonly retries: number;
    readonly lastRequeue?: "resend" | "retry";
  },
): string | undefined {
  const resent = `${followUpId}-r${record.resends}`;
  const retried = `${followUpId}-q${record.retries}`;
  if (record.resends === 0) return record.retries === 0 ? followUpId : retried;
  if (record.retries === 0) return resent;
  if (record.lastRequeue === undefined) return undefined;
  return record.lastRequeue === "resend" ? resent : retried;
}

/** Job id on the input queue: the event id itself when BullMQ accepts it, so duplicates collapse. */
export function eventJobId(eventId: string): string {
  // BullMQ refuses ids that read back as an integer ("7", "-7"), not only strings of digits.
  return /^[A-Za-z0-9._~-]{1,200}$/.test(eventId) &&
    String(Number.parseInt(eventId, 10)) !== eventId
    ? eventId
    : `e${idHash(eventId)}`;
}

/**
 * The event a job of the input queue carries: its data, with the type taken from the job name
 * when the data leaves it out (publishers may name the job after the type instead).
 */
export function eventInputOfJob(name: string, data: unknown): unknown {
  return data && typeof data === "object" && !Array.isArray(data) && !("type" in data)
    ? { type: name, ...data }
    : data;
}
