import type { Queue } from "bullmq";
import { DateTime } from "luxon";
import { orderHash } from "../domain/address-hash.js";
import { cutText } from "../domain/cut-text.js";
import {
  CHANNELS,
  type Channel,
  contractLength,
  eventEmailAddress,
  MAX_ID_LENGTH,
  normalizePhone,
  PHONE_CHANNELS,
} from "../domain/events.js";
import type { RuleSet } from "../domain/rules.js";
import { findStep } from "../domain/step-ref.js";
import { plainText, UNPAIRED_SURROGATE } from "../domain/unsafe-text.js";
import { knownAddresses } from "../queue/known-addresses.js";
import { type FollowUpJobData, followUpJobId, latestSendJobId } from "../queue/names.js";
import { stepLabels } from "../queue/step-labels.js";
import { collectReport, type ReportSources, reportSourcesOn } from "../reports/owner-reports.js";
import { readSchedule, type ScheduleDay } from "../reports/pending-schedule.js";
import { reasonWords } from "../reports/reason-words.js";
import type { ReportModel, ReportPeriod } from "../reports/report-model.js";
import { type AuditEntry, AuditTrail } from "../store/audit-trail.js";
import { CustomerIndex } from "../store/customer-index.js";
import { DeliveryLedger } from "../store/delivery-ledger.js";
import { DiscountCodes } from "../store/discount-codes.js";
import { SMS_STATUS_FAILURES_MS } from "../store/follow-up-store.js";
import { LOOK_AFTER_DUE_MS } from "../store/job-watch.js";
import { shardScope } from "../store/keys.js";
import { type OrderRecord, OrderStore } from "../store/order-store.js";
import { type RedisClient, unlessRedisAway } from "../store/redis-client.js";
import { ReplicaWait, type ReplicaWaitSettings, type ShortWait } from "../store/replica-wait.js";
import { type Shards, shardStores } from "../store/shards.js";
import { sharedSecret } from "../store/shared-secrets.js";
import { abandonedSending, isAbandonedSending, type StepRecord } from "../store/step-record.js";
import { parseReplyId } from "../store/step-replies.js";
import { type OptOutScope, SuppressionList } from "../store/suppression-list.js";
import {
  createEraser,
  customersQueuedWith,
  type ErasureReceipt,
  type FailedWebhooks,
  removeJobs,
} from "./erase-customer.js";
import { type EventInShard, eventLocator } from "./locate-event.js";
import { postponedMoves } from "./postponed-moves.js";
import { customerOfEvent, readCustomerTimeline, type TimelineSources } from "./read-timeline.js";
import {
  type CustomerTimeline,
  type TimelineAuditEntry,
  type TimelineRefund,
  timelineAudit,
  timelineRefunds,
  whenPurchaseArrives,
} from "./timeline.js";

/**
 * What operators do for customers, for the CLI, the admin API and the console alike: look up a
 * customer or an order, cancel pending steps, resend a step, list and retry failed follow-ups.
 * Every action is recorded in the audit trail with who did it. Erasure is erase-customer.ts.
 */

/** A value a refusal quotes (an id, a step reference, an operator's name): see `said`. */
export interface Quoted {
  readonly quoted: string;
}

/** `value` as a refusal quotes it: a page can show it apart from the words around it. */
export function quote(value: string): Quoted {
  return { quoted: value };
}

/** `values` quoted one by one, separated by `separator` (a list of ids). */
export function quoteEach(values: readonly string[], separator = ", "): (string | Quoted)[] {
  return values.flatMap((value, i) => (i === 0 ? [quote(value)] : [separator, quote(value)]));
}

/** A refusal's words, and where the values it quotes stand in them ([start, end) offsets). */
export interface Said {
  readonly text: string;
  readonly quoted: readonly (readonly [number, number])[];
}

type SaidValue = string | number | Quoted | readonly (string | Quoted)[];

/**
 * A refusal's words from a template: a value given with `quote` (or in a list of `quoteEach`) is
 * quoted, one of the customer's or an operator's (an id names no one but cannot be read as words:
 * a right-to-left one would reorder those around it on a page); the rest are the message's own.
 */
export function said(strings: TemplateStringsArray, ...values: readonly SaidValue[]): Said {
  let text = "";
  const quoted: [number, number][] = [];
  const add = (value: string | number | Quoted) => {
    if (typeof value === "object") {
      quoted.push([text.length, text.length + value.quoted.length]);
      text += value.quoted;
    } else text += String(value);
  };
  strings.forEach((words, i) => {
    text += words;
    if (i >= values.length) return;
    const value = values[i] as SaidValue;
    if (Array.isArray(value)) for (const part of value) add(part);
    else add(value as string | number | Quoted);
  });
  return { text, quoted };
}

/** A refusal an operator can act on; `kind` decides the exit code or HTTP status. */
export class OperatorError extends Error {
  /** Where the values the message quotes stand in it (`said`): [start, end) offsets, in order. */
  readonly quoted: readonly (readonly [number, number])[];

  constructor(
    message: string | Said,
    readonly kind: "not-found" | "conflict" | "invalid",
  ) {
    super(typeof message === "string" ? message : message.text);
    this.name = "OperatorError";
    this.quoted = typeof message === "string" ? [] : message.quoted;
  }
}

/**
 * An operator's free text (a cancel's reason, a resolution's note) on one line: it is shown in
 * timelines line by line, where a line break would start what looks like another entry. Refused
 * with half a character (an unpaired surrogate, which a JSON body can carry): Redis's scripts
 * cannot read it, and the action failed half-way.
 */
function oneLine(text: string | undefined, what: "reason" | "note"): string | undefined {
  if (text !== undefined && UNPAIRED_SURROGATE.test(text))
    throw new OperatorError(
      `${what}: the text holds half a character (an unpaired UTF-16 surrogate), which cannot be stored: give the character whole, or leave it out`,
      "invalid",
    );
  const line = text === undefined ? undefined : plainText(text);
  return line || undefined;
}

/**
 * An order or customer id as an operator gave it, as intake stores ids: without surrounding
 * spaces (a pasted id often carries some). Refused when empty or longer than any event's id.
 */
export function operatorId(value: string, what: "customer" | "order"): string {
  const id = value.trim();
  const named = what === "order" ? "an order id" : "a customer id";
  if (id === "") throw new OperatorError(`expected ${named}, got an empty one`, "invalid");
  // Counted as the contract counts (an emoji one character): every id an event carries is found.
  const length = contractLength(id);
  if (length > MAX_ID_LENGTH)
    throw new OperatorError(
      `expected ${named} of at most ${MAX_ID_LENGTH} characters (as events carry them), got ${length}`,
      "invalid",
    );
  // No event can carry one (events.ts): naming no one, and unfit for a link or a key.
  if (UNPAIRED_SURROGATE.test(id))
    throw new OperatorError(
      `expected ${named}, got one with half a character (an unpaired UTF-16 surrogate)`,
      "invalid",
    );
  return id;
}

/** The HTTP status of an operator tool's refusal, as the admin API and the console answer it. */
export const OPERATOR_ERROR_STATUS = { "not-found": 404, conflict: 409, invalid: 400 } as const;

/** A step as operators name it. */
export interface StepRef {
  readonly eventId: string;
  readonly stepId: string;
}

/** `<eventId>/<stepId>` → its parts (the step id is the one `plan` prints, `big-ticket.check-in`). */
export function parseStepRef(ref: string): StepRef {
  const slash = ref.lastIndexOf("/");
  // Event ids as intake keeps them: without surrounding spaces.
  const eventId = ref.slice(0, slash).trim();
  const stepId = ref.slice(slash + 1).trim();
  if (slash <= 0 || eventId === "" || !/^[^.\s]+\.[^.\s]+$/.test(stepId)) {
    throw new OperatorError(
      said`not a step reference: ${quote(JSON.stringify(ref))} (expected <eventId>/<stepId>, with the step id plan prints, such as evt-123/big-ticket.check-in)`,
      "invalid",
    );
  }
  return { eventId, stepId };
}

const refText = (ref: StepRef) => `${ref.eventId}/${ref.stepId}`;

/** A step with the shard its event lives in; undefined when no shard holds the event. */
interface StepInShard extends StepRef {
  readonly shard: number | undefined;
}

/**
 * The timeline of one order: the customer's timeline with that order's purchases only, and the
 * order's refunds. An order known by its refunds alone (they can arrive before their purchase)
 * has no customer yet: `customer` and `suppressions` are null, and `awaitingPurchase` says what
 * its refunds will do when the purchase arrives.
 */
export type OrderTimeline = OrderFacts &
  (
    | CustomerTimeline
    | {
        readonly customer: null;
        readonly suppressions: null;
        readonly purchases: readonly [];
        readonly audit: readonly [];
      }
  );

/** What is recorded against an order itself. */
export interface OrderFacts {
  readonly orderId: string;
  /**
   * Whether a purchase of the order has arrived: false while only its refunds are known (a
   * purchase dropped on arrival because the order was refunded in full counts as arrived).
   */
  readonly purchaseArrived: boolean;
  /** Every refund recorded for the order. */
  readonly refunds: readonly TimelineRefund[];
  /** Purchases that arrived after a full refund and were dropped: nothing planned, nothing kept. */
  readonly droppedPurchases: readonly { readonly eventId: string; readonly arrivedAt: string }[];
  /** While no purchase has arrived: what the refunds will do when it does; else null. */
  readonly awaitingPurchase: string | null;
}

export interface CancelResult {
  /** Steps cancelled now. */
  readonly cancelled: readonly string[];
  /**
   * Steps being sent at this moment: what they send goes, but if that attempt fails they are
   * cancelled (at their next claim) instead of retried.
   */
  readonly inFlight: readonly string[];
}

/** Whom an operator opts out: a customer (by id), or an email address or phone number. */
export type OptOutTarget =
  | { readonly customer: string }
  | { readonly email: string }
  | { readonly phone: string };

/**
 * What an operator's opt-out did, without personal data beyond the customer id the operator gave:
 * an address given is not repeated, only its kind.
 */
export interface OptOutReceipt {
  /** The customer id opted out; null for an address. */
  readonly customer: string | null;
  /** For an address: which kind was given (`email` or `phone`); null for a customer. */
  readonly address: "email" | "phone" | null;
  /** The channels opted out of. */
  readonly channels: readonly Channel[];
  /** `["marketing"]`: offers only; null: every follow-up on those channels. */
  readonly purposes: readonly "marketing"[] | null;
  /**
   * Email addresses and phone numbers the opt-out covers by keyed hash: the one given, or those
   * of the customer's purchases still kept (none for a customer id bought with more than five of
   * a kind, taken for shared).
   */
  readonly addressesCovered: number;
  /** Channels newly opted out of; on the others the customer or address was already. */
  readonly newlyOptedOut: readonly Channel[];
  readonly optedOutAt: string;
  readonly by: string;
}

export interface FailedFollowUp {
  readonly ref: string;
  readonly channel: string;
  readonly kind: string;
  readonly ruleId: string;
  readonly failedAt: string;
  readonly attempts: number;
  readonly reason: { readonly code: string; readonly text: string; readonly words: string };
  /**
   * For a text a final SMS status failed (Twilio's `canceled` or `failed`: it never went out, its
   * job had ended well): that status and its error code. Absent for a failed send.
   */
  readonly delivery?: { readonly status: string; readonly errorCode: number | null };
}

export interface FailedFilter {
  /** Failed at or after (epoch ms). */
  readonly since?: number;
  /** Failed at or before (epoch ms). */
  readonly until?: number;
  readonly channel?: string;
  /** Only these steps (`<eventId>/<stepId>`). */
  readonly refs?: readonly string[];
}

export interface OperatorToolsDeps {
  readonly redis: RedisClient;
  readonly prefix: string;
  /** How many shards the deployment has (FOLLOW_UP_SHARDS, as its first worker recorded it). */
  readonly shards: number;
  readonly rules: () => RuleSet;
  /** Every shard's follow-ups queue: a step's jobs are in its event's shard's. */
  readonly followUps: Shards<Queue<FollowUpJobData>>;
  /** The input queue, whose finished jobs erasure clears of the customer's events. */
  readonly events?: Queue;
  /** OUTBOX_DIR, whose files erasure clears of messages to the customer. */
  readonly outboxDir?: string;
  /** This process's webhook spool (WEBHOOK_SPOOL_DIR): erasure clears its `failed/` of them. */
  readonly webhookSpool?: FailedWebhooks;
  readonly addressHashSecret?: string;
  /**
   * REDIS_WAIT_REPLICAS: what erasure writes to the opt-out lists (an erased customer's opt-outs
   * under their keyed hash) waits for replicas, as every opt-out does.
   */
  readonly replicaWait?: ReplicaWaitSettings;
  /**
   * Told of each of those writes that fewer replicas than REDIS_WAIT_REPLICAS confirmed (a worker
   * logs and counts them as it does its own: followups_replica_waits_short_total).
   */
  readonly onReplicaShort?: (short: ShortWait) => void;
  /**
   * Told when a finished purchase could not be trimmed after an operator's change of its last
   * step (the change stands): by event id, as the worker logs its own.
   */
  readonly onTrimFailed?: (eventId: string, error: unknown) => void;
  /** Told of what a report could not read (purchases by event id and error name only). */
  readonly logger?: ReportSources["logger"];
  /** RECORD_RETENTION_DAYS in ms: a purchase whose last step is cancelled is kept that long after. */
  readonly recordRetentionMs?: number;
  /**
   * DELIVERY_LEASE_MS: a step `sending` this long untouched lost its sender (a worker killed
   * mid-send) and can be cancelled; one younger is being sent right now.
   */
  readonly sendLeaseMs: number;
  /** Epoch ms now. */
  readonly now: () => number;
  /** Told of every customer erased (a worker counts them: followups_erasures_total). */
  readonly onErased?: () => void;
}

/** Failed jobs read per page of BullMQ's failed list. */
const FAILED_PAGE = 500;

/** Final SMS statuses of a text that never went out: its step failed (note-sms-status.lua). */
const NOT_SENT: ReadonlySet<string> = new Set(["canceled", "failed"]);

export function createOperatorTools(deps: OperatorToolsDeps) {
  const { redis, prefix } = deps;
  if (deps.followUps.count !== deps.shards)
    throw new RangeError(
      `${deps.followUps.count} follow-ups queues given for a deployment of ${deps.shards} shards`,
    );
  const secret = deps.addressHashSecret ? { addressHashSecret: deps.addressHashSecret } : {};
  const replicaWait =
    deps.replicaWait && new ReplicaWait(redis, deps.replicaWait, deps.onReplicaShort);
  const shards = shardStores(redis, prefix, deps.shards, {
    ...secret,
    ...(replicaWait && { replicaWait }),
    ...(deps.recordRetentionMs !== undefined && { recordRetentionMs: deps.recordRetentionMs }),
    ...(deps.onTrimFailed && { onTrimFailed: deps.onTrimFailed }),
  });
  const locate = eventLocator(redis, prefix, deps.shards);
  const orders = new OrderStore(redis, prefix, { now: deps.now });
  const suppressions = new SuppressionList(redis, prefix, {
    ...secret,
    ...(replicaWait && { replicaWait }),
  });
  const customers = new CustomerIndex(redis, prefix, { ...secret, now: deps.now });
  const audit = new AuditTrail(redis, prefix);
  /** ADDRESS_HASH_SECRET, or the one the workers share in Redis: the audit trail's keyed hashes. */
  const hashSecret = () =>
    deps.addressHashSecret
      ? Promise.resolve(deps.addressHashSecret)
      : sharedSecret(redis, prefix, "address-hash");
  // Scoped to shard 0 of all of them: its readers add up every shard's counts.
  const ledger = new DeliveryLedger(redis, shardScope(prefix, 0, deps.shards));
  /**
   * Corrections of the pending counts for follow-ups postponed past their planned due time, from
   * every shard's queue and records (operations/postponed-moves.ts).
   */
  const postponed = () =>
    postponedMoves(
      Array.from({ length: deps.shards }, (_, shard) => ({
        queue: deps.followUps.of(shard),
        redis,
        store: shards.of(shard).store,
      })),
    );

  /** An order's purchase events whose shard this deployment has. */
  const servedEvents = (order: OrderRecord): readonly EventInShard[] =>
    order.events.filter((event) => event.shard < deps.shards);
  /** An order's purchase events, each with its shard (as the order's link recorded it). */
  const eventsOfOrder = async (orderId: string): Promise<readonly EventInShard[]> =>
    servedEvents(await orders.get(orderId));

  const eraseCustomer = createEraser({
    redis,
    prefix,
    rules: deps.rules,
    shards,
    orders,
    codes: new DiscountCodes(redis, prefix),
    eventsOfOrder,
    suppressions,
    customers,
    audit,
    followUps: deps.followUps,
    ...(deps.events && { events: deps.events }),
    ...(deps.outboxDir && { outboxDir: deps.outboxDir }),
    ...(deps.webhookSpool && { webhookSpool: deps.webhookSpool }),
    now: deps.now,
  });
  const sources = (): TimelineSources => ({
    shards,
    orders,
    suppressions,
    audit,
    defaultZone: deps.rules().defaults.timezone,
  });

  /** A step as operators name it, with its event's shard (looked up in every shard). */
  const locateStep = async (ref: StepRef): Promise<StepInShard> => ({
    ...ref,
    shard: await locate(ref.eventId),
  });

  /** The step's record, in its event's shard. */
  const recordOf = async (step: StepInShard) =>
    step.shard === undefined
      ? undefined
      : (await shards.of(step.shard).store.stepRecords(step.eventId, [step.stepId])).get(
          step.stepId,
        );

  const customerMemberOf = async (eventId: string, shard: number) => {
    const customerId = await customerOfEvent(shards.of(shard).store, eventId);
    return customerId === undefined ? undefined : suppressions.customerMember(customerId);
  };

  const record = async (entry: Omit<AuditEntry, "at">, at = deps.now()) =>
    audit.record({ ...entry, at });

  /** The pending steps of some purchases, as refs. */
  const stepsOf = async (events: readonly EventInShard[]) => {
    const refs: StepInShard[] = [];
    for (const { eventId, shard } of events) {
      for (const stepId of (await shards.of(shard).store.allStepRecords(eventId)).keys()) {
        refs.push({ eventId, stepId, shard });
      }
    }
    return refs;
  };

  /** A failed step as `followups failed` lists it, unless the filter leaves it out. */
  const failedItem = (
    text: string,
    stepId: string,
    stepRecord: StepRecord,
    filter: FailedFilter,
    failedAt: number,
  ): FailedFollowUp | undefined => {
    const labels = stepLabels(deps.rules(), stepId, stepRecord);
    if (filter.channel !== undefined && labels.channel !== filter.channel) return undefined;
    if (filter.since !== undefined && failedAt < filter.since) return undefined;
    if (filter.until !== undefined && failedAt > filter.until) return undefined;
    const code = stepRecord.reason?.code ?? "unknown";
    const delivery = stepRecord.delivery;
    return {
      ref: text,
      ...labels,
      failedAt: new Date(failedAt).toISOString(),
      attempts: stepRecord.attempts,
      reason: { code, text: stepRecord.reason?.text ?? "", words: reasonWords(code) },
      // A text a final SMS status failed: that status, and its error code.
      ...(delivery &&
        NOT_SENT.has(delivery.status) && {
          delivery: { status: delivery.status, errorCode: delivery.errorCode ?? null },
        }),
    };
  };

  /** Failed follow-ups of every shard's queue, with the shard each is in. */
  const failedInShards = async (
    filter: FailedFilter,
  ): Promise<{ item: FailedFollowUp; shard: number }[]> => {
    const latest = new Map<string, { item: FailedFollowUp; shard: number }>();
    const wanted = filter.refs ? new Set(filter.refs) : undefined;
    for (const { shard, store } of shards.all()) {
      const failedStep = async (text: string, ref: StepRef, at?: number) => {
        if (wanted && !wanted.has(text)) return;
        const stepRecord = (await store.stepRecords(ref.eventId, [ref.stepId])).get(ref.stepId);
        if (stepRecord?.state !== "failed") return;
        const item = failedItem(
          text,
          ref.stepId,
          stepRecord,
          filter,
          stepRecord.changedAt ?? at ?? 0,
        );
        if (item) latest.set(text, { item, shard });
      };
      const queue = deps.followUps.of(shard);
      for (let start = 0; ; start += FAILED_PAGE) {
        const jobs = await queue.getFailed(start, start + FAILED_PAGE - 1);
        for (const job of jobs) {
          if (!job?.data) continue;
          const ref = { eventId: job.data.e, stepId: job.data.s };
          await failedStep(refText(ref), ref, job.finishedOn ?? job.timestamp);
        }
        if (jobs.length < FAILED_PAGE) break;
      }
      // Texts a final SMS status failed after their send (Twilio's `canceled`, `failed`): their
      // jobs completed. Listed while their step is still failed (not resent, not retried since).
      const listedSince = deps.now() - SMS_STATUS_FAILURES_MS;
      for (const { ref: text, at } of await store.smsStatusFailures(listedSince)) {
        const slash = text.lastIndexOf("/");
        await failedStep(
          text,
          { eventId: text.slice(0, slash), stepId: text.slice(slash + 1) },
          at,
        );
      }
    }
    return [...latest.values()].sort((a, b) => b.item.failedAt.localeCompare(a.item.failedAt));
  };

  const failedSteps = async (filter: FailedFilter): Promise<FailedFollowUp[]> =>
    (await failedInShards(filter)).map(({ item }) => item);

  return {
    /** A customer's timeline; throws not-found for a customer nothing is stored about. */
    async customer(given: string): Promise<CustomerTimeline> {
      const customerId = operatorId(given, "customer");
      const timeline = await readCustomerTimeline(sources(), customerId);
      if (!timeline)
        throw new OperatorError(
          said`no customer ${quote(JSON.stringify(customerId))} is known`,
          "not-found",
        );
      return timeline;
    },

    /** The timelines of every customer who used an email address or phone number. */
    async customersByAddress(address: string): Promise<CustomerTimeline[]> {
      const ids = await customers.customersOf(asStored(address));
      const timelines: CustomerTimeline[] = [];
      for (const id of ids) {
        const timeline = await readCustomerTimeline(sources(), id);
        if (timeline) timelines.push(timeline);
      }
      if (timelines.length === 0) throw noCustomerWith(address);
      return timelines;
    },

    /** One order's purchases and their steps, with the customer's details and opt-outs. */
    async order(given: string): Promise<OrderTimeline> {
      const orderId = operatorId(given, "order");
      const order = await orders.get(orderId);
      const events = servedEvents(order);
      const facts = {
        orderId,
        purchaseArrived: events.length > 0 || order.dropped.length > 0,
        refunds: timelineRefunds(order.recorded),
        droppedPurchases: order.dropped.map((dropped) => ({
          eventId: dropped.eventId,
          arrivedAt: new Date(dropped.at).toISOString(),
        })),
      };
      if (events.length === 0) {
        if (facts.refunds.length === 0)
          throw new OperatorError(
            said`no order ${quote(JSON.stringify(orderId))} is known`,
            "not-found",
          );
        // Known by its refunds alone: no customer to show until a purchase brings one.
        return {
          ...facts,
          awaitingPurchase: facts.purchaseArrived ? null : whenPurchaseArrives(facts.refunds),
          customer: null,
          suppressions: null,
          purchases: [],
          audit: [],
        };
      }
      let customerId: string | undefined;
      const unreadable: string[] = [];
      for (const { eventId, shard } of events) {
        if (customerId !== undefined) break;
        const stored = await shards.of(shard).store.storedPurchase(eventId);
        customerId = stored.customerId;
        if (stored.data === "unreadable") unreadable.push(eventId);
      }
      // A stored purchase that cannot be decoded names no customer: the customer's own timeline
      // (by id) shows its follow-ups.
      if (customerId === undefined && unreadable.length > 0)
        throw new OperatorError(
          said`order ${quote(JSON.stringify(orderId))} is known, but its purchase ${quoteEach(unreadable)} could not be read (its stored purchase is damaged, or in a format this version does not know), so its customer is not known: look the customer up by id (followups customer ID), whose timeline shows its follow-ups`,
          "not-found",
        );
      // The order's link outlives its purchases' records (kept for refunds): with none left,
      // there is no customer to show, nor their opt-outs, rather than a blank one with none.
      if (customerId === undefined)
        throw new OperatorError(
          said`order ${quote(JSON.stringify(orderId))} is known, but the records of its purchases are gone (kept RECORD_RETENTION_DAYS after their last follow-up, or erased): look the customer up by id`,
          "not-found",
        );
      const timeline = await readCustomerTimeline(sources(), customerId, events);
      if (!timeline)
        throw new OperatorError(
          said`no order ${quote(JSON.stringify(orderId))} is known`,
          "not-found",
        );
      return { ...facts, awaitingPurchase: null, ...timeline };
    },

    /**
     * Cancels the pending steps of one step, an order or a customer, with the reason and who did
     * it on each step, counted in the ledger (reason `operator`). Steps being sent at this moment
     * are reported, not cancelled. Throws when nothing was pending.
     */
    async cancel(
      target: { step: string } | { order: string } | { customer: string },
      given: { by: string; reason?: string },
    ): Promise<CancelResult> {
      const options = { ...given, reason: oneLine(given.reason, "reason") };
      let refs: StepInShard[];
      let targetText: string;
      let told: (string | Quoted)[] | undefined;
      if ("step" in target) {
        refs = [await locateStep(parseStepRef(target.step))];
        targetText = target.step;
      } else if ("order" in target) {
        const orderId = operatorId(target.order, "order");
        refs = await stepsOf(await eventsOfOrder(orderId));
        // The audit trail (a year) names the order by keyed hash, as it names a customer: the
        // id itself lives no longer than the records that hold it (RECORD_RETENTION_DAYS).
        targetText = `order k:${orderHash(await hashSecret(), orderId)}`;
        told = ["order ", quote(orderId)];
      } else {
        const customerId = operatorId(target.customer, "customer");
        const { shard, history } = shards.ofCustomer(customerId);
        const purchases = await history.purchasesOf(customerId);
        refs = await stepsOf(purchases.map((p) => ({ eventId: p.eventId, shard })));
        // The audit trail names a customer by keyed hash; the operator's answer by what they typed.
        targetText = `customer ${await suppressions.customerMember(customerId)}`;
        told = ["customer ", quote(JSON.stringify(customerId))];
      }
      const now = deps.now();
      const text = options.reason
        ? `cancelled by ${options.by}: ${options.reason}`
        : `cancelled by ${options.by}`;
      const cancelled: string[] = [];
      const inFlight: string[] = [];
      let member: string | undefined;
      let known = 0;
      for (const ref of refs) {
        const found = await recordOf(ref);
        if (found) known++;
        const abandoned = found !== undefined && isAbandonedSending(found, now, deps.sendLeaseMs);
        if (found?.state === "sending" && !abandoned && ref.shard !== undefined) {
          // What it sends now goes; a retry or a takeover after this attempt cancels instead.
          await shards
            .of(ref.shard)
            .store.cancelAtNextClaim(ref.eventId, ref.stepId, `operator: ${text}`);
          inFlight.push(refText(ref));
        }
        if ((found?.state !== "scheduled" && !abandoned) || ref.shard === undefined) continue;
        const { store } = shards.of(ref.shard);
        const labels = stepLabels(deps.rules(), ref.stepId, found);
        const changed = await store.transition(
          ref.eventId,
          ref.stepId,
          ["scheduled", abandonedSending(now, deps.sendLeaseMs)],
          { state: "cancelled", reason: { code: "operator", text } },
          now,
          { outcome: "cancelled", ...labels, reason: "operator" },
          found.dueAt,
        );
        if (!changed) continue;
        cancelled.push(refText(ref));
        // A step cancelled after a failed attempt gives back the cap slot that attempt took: the
        // slot of its pending send's job (a resend's `-r<n>` or retry's `-q<n>` after one), not
        // the first send's, which reached the customer. For a step both resent and retried by a
        // version that did not note which came last, none: its job gives its own back when it
        // runs and finds the step cancelled.
        const base = followUpJobId(ref.eventId, ref.stepId);
        const sendJob = latestSendJobId(base, found);
        const customerId = await customerOfEvent(store, ref.eventId);
        if (sendJob !== undefined && customerId !== undefined && labels.channel !== "unknown")
          await shards.of(ref.shard).caps.release(labels.channel as Channel, customerId, sendJob);
        member ??= await customerMemberOf(ref.eventId, ref.shard);
        // A job waiting for it has nothing left to do (one being worked on refuses to go: fine;
        // Redis away is not, and stops the command).
        for (const jobId of new Set([base, sendJob ?? base]))
          await deps.followUps
            .of(ref.shard)
            .remove(jobId)
            .catch(unlessRedisAway(() => 0));
      }
      // A step named that has no record: unknown (as resend says), not a conflict.
      if (known === 0 && "step" in target)
        throw new OperatorError(said`no follow-up ${quote(targetText)} is known`, "not-found");
      if (cancelled.length === 0) {
        const named = told ?? [quote(targetText)];
        const why =
          inFlight.length > 0
            ? said`nothing to cancel: ${quoteEach(inFlight)} ${inFlight.length === 1 ? "is" : "are"} being sent right now (if that attempt fails, it is cancelled, not retried)`
            : refs.length === 0
              ? said`nothing to cancel: no follow-ups are known for ${named}`
              : said`nothing to cancel: no follow-up of ${named} is pending`;
        throw new OperatorError(why, "conflict");
      }
      await record(
        {
          by: options.by,
          action: "cancel",
          target: targetText,
          ...(member && { customer: member }),
          // Not the reason: each step keeps it, for as long as its purchase's record (an
          // operator's words may name the customer; the trail is kept a year).
          detail: `${cancelled.length} cancelled`,
        },
        now,
      );
      return { cancelled, inFlight };
    },

    /**
     * Sends a sent or failed step again, deliberately and once: its record goes back to scheduled,
     * due now, counted as a resend (ledger outcome `resent`, never a possible duplicate), and a job
     * of its own is queued. Refused for other states, a refunded order, or once the purchase's data
     * is gone.
     */
    async resend(ref: string, by: string): Promise<{ ref: string; jobId: string }> {
      const step = await locateStep(parseStepRef(ref));
      const found = await recordOf(step);
      if (!found || step.shard === undefined)
        throw new OperatorError(said`no follow-up ${quote(ref)} is known`, "not-found");
      const { store } = shards.of(step.shard);
      if (found.state !== "sent" && found.state !== "failed") {
        throw new OperatorError(
          said`${quote(ref)} is ${found.state}: only a sent or failed follow-up can be resent`,
          "conflict",
        );
      }
      const stored = await store.storedPurchase(step.eventId);
      if (stored.data === "unreadable") {
        throw new OperatorError(
          said`${quote(ref)} cannot be resent: its purchase could not be read (its stored purchase is damaged, or in a format this version does not know)`,
          "conflict",
        );
      }
      if (stored.data === "gone") {
        throw new OperatorError(
          said`${quote(ref)} cannot be resent: its purchase's details have been scrubbed (they are kept RECORD_RETENTION_DAYS after the last follow-up)`,
          "conflict",
        );
      }
      const labels = stepLabels(deps.rules(), step.stepId, found);
      // A customer who opted out since is not sent it again: the worker would skip it, and the
      // step's record of the send the customer did get would give way to that skip.
      const customer = stored.kept?.customer;
      const channel = labels.channel === "unknown" ? undefined : (labels.channel as Channel);
      if (customer && channel) {
        const to = channel === "email" ? customer.email : customer.phone;
        const who = { customerId: customer.id, ...(to && { address: to }) };
        const marketing = findStep(deps.rules(), step.stepId)?.step.purpose === "marketing";
        if (
          (await suppressions.isSuppressed(channel, who)) ||
          (marketing && (await suppressions.isSuppressed(channel, who, "marketing")))
        )
          throw new OperatorError(
            said`${quote(ref)} cannot be resent: the customer opted out of ${marketing ? `offers by ${OFFERS_BY[channel]}` : OPTED_OUT_OF[channel]}`,
            "conflict",
          );
      }
      const now = deps.now();
      const result = await store.requeue(step.eventId, step.stepId, "resend", now, {
        outcome: "resent",
        ...labels,
      });
      if (!result.requeued) {
        throw new OperatorError(
          result.stoppedFor
            ? said`${quote(ref)} cannot be resent: ${result.stoppedFor}`
            : said`${quote(ref)} changed meanwhile (now ${result.record?.state ?? "gone"}); try again`,
          "conflict",
        );
      }
      const jobId = `${followUpJobId(step.eventId, step.stepId)}-r${result.record.resends}`;
      // Watched before it is a job: one lost (or never added) is found (queue/lost-jobs.ts).
      await shards
        .of(step.shard)
        .jobWatch.watch([
          { eventId: step.eventId, stepId: step.stepId, lookAt: now + LOOK_AFTER_DUE_MS },
        ])
        .catch(unlessRedisAway(() => undefined));
      await deps.followUps
        .of(step.shard)
        .add(labels.channel, { e: step.eventId, s: step.stepId }, { jobId });
      const member = stored.customerId && (await suppressions.customerMember(stored.customerId));
      await record({ by, action: "resend", target: ref, ...(member && { customer: member }) }, now);
      return { ref, jobId };
    },

    /**
     * Marks a customer's reply (a complaint) resolved, with a note, once: a second call answers
     * conflict and keeps the first resolution.
     */
    async resolve(
      replyId: string,
      given: { by: string; note?: string },
    ): Promise<{ id: string; resolvedAt: string; by: string; note: string | null }> {
      const options = { ...given, note: oneLine(given.note, "note") };
      const ref = parseReplyId(replyId);
      if (!ref)
        throw new OperatorError(
          said`not a reply id: ${quote(JSON.stringify(replyId))} (expected <eventId>/<stepId>/<n>, such as evt-123/big-ticket.check-in/1)`,
          "invalid",
        );
      const now = deps.now();
      // Looked up, not taken from the id: an id typed without its `@<shard>`, or given out before
      // the shard count changed (`followups reshard`), names no shard or another one.
      const shard = await locate(ref.eventId);
      const result =
        shard === undefined
          ? undefined
          : await shards.of(shard).replies.resolve(ref.eventId, ref.stepId, ref.n, {
              at: now,
              by: options.by,
              ...(options.note && { note: options.note }),
            });
      if (!result || shard === undefined)
        throw new OperatorError(said`no reply ${quote(replyId)} is known`, "not-found");
      const resolved = result.reply.resolved;
      if (result.already || !resolved) {
        throw new OperatorError(
          said`${quote(replyId)} was resolved already, by ${resolved?.by !== undefined ? quote(resolved.by) : "someone"} at ${new Date(resolved?.at ?? 0).toISOString()}`,
          "conflict",
        );
      }
      const member = await customerMemberOf(ref.eventId, shard);
      await record(
        {
          by: options.by,
          action: "resolve",
          target: replyId,
          ...(member && { customer: member }),
          // Not the note: the reply keeps it, and expires with its purchase's record.
        },
        now,
      );
      return {
        id: replyId,
        resolvedAt: new Date(resolved.at).toISOString(),
        by: resolved.by,
        note: resolved.note ?? null,
      };
    },

    /** Failed follow-ups (their steps still failed), latest first, one per step. */
    failed: failedSteps,

    /**
     * Puts failed follow-ups back in the queue for real: each step's record goes back to
     * scheduled with its attempts starting again (ledger outcome `retried`), its failed job is
     * replaced by a new one. Returns the steps requeued.
     */
    async retryFailed(filter: FailedFilter, by: string): Promise<{ requeued: string[] }> {
      const failed = await failedInShards(filter);
      const now = deps.now();
      const requeued: string[] = [];
      const requeuedIn = new Set<number>();
      for (const { item, shard } of failed) {
        const step = parseStepRef(item.ref);
        const { store } = shards.of(shard);
        const result = await store.requeue(step.eventId, step.stepId, "retry", now, {
          outcome: "retried",
          channel: item.channel,
          kind: item.kind,
          ruleId: item.ruleId,
        });
        if (!result.requeued) continue;
        const base = followUpJobId(step.eventId, step.stepId);
        await shards
          .of(shard)
          .jobWatch.watch([
            { eventId: step.eventId, stepId: step.stepId, lookAt: now + LOOK_AFTER_DUE_MS },
          ])
          .catch(unlessRedisAway(() => undefined));
        await deps.followUps
          .of(shard)
          .add(
            item.channel,
            { e: step.eventId, s: step.stepId },
            { jobId: `${base}-q${result.record.retries}` },
          );
        requeued.push(item.ref);
        requeuedIn.add(shard);
        const member = await customerMemberOf(step.eventId, shard);
        await record(
          { by, action: "retry", target: item.ref, ...(member && { customer: member }) },
          now,
        );
      }
      // The failed jobs of the steps requeued: their retries have jobs of their own.
      const retried = new Set(requeued);
      for (const shard of requeuedIn) {
        await removeJobs(
          deps.followUps.of(shard),
          (job) => retried.has(refText({ eventId: job.data?.e, stepId: job.data?.s })),
          new Set(),
          ["failed"],
        );
      }
      return { requeued };
    },

    /**
     * Waits until the steps have left scheduled and sending, or `timeoutMs` passes: how many went
     * out, failed again, ended otherwise, or are still pending.
     */
    async waitForOutcome(refs: readonly string[], timeoutMs: number) {
      const deadline = deps.now() + timeoutMs;
      const steps = await Promise.all(refs.map((ref) => locateStep(parseStepRef(ref))));
      for (;;) {
        const tally = { sent: 0, failed: 0, other: 0, pending: 0 };
        for (const step of steps) {
          const state = (await recordOf(step))?.state;
          if (state === "sent" || state === "failed") tally[state]++;
          else if (state === "scheduled" || state === "sending") tally.pending++;
          else tally.other++;
        }
        if (tally.pending === 0 || deps.now() >= deadline) return tally;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    },

    /**
     * Opts a customer or an address out, as a `customer.unsubscribed` event does: a customer by
     * id and by the keyed hashes of the addresses of their purchases still kept (as the intake
     * covers them), an address by its keyed hash whether or not any customer is known by it.
     * Counted once per channel in the ledger (outcome `optout`, reason `operator`, or
     * `operator-offers` for offers only); a voice opt-out of a number is marked (`d:`) so that a
     * texted START leaves its calls off. Pending steps it covers are skipped when they fall due.
     * Idempotent: again, it adds nothing and counts nothing. Recorded in the audit trail.
     */
    async optOut(
      target: OptOutTarget,
      given: { by: string; channels?: readonly Channel[]; offersOnly?: boolean },
    ): Promise<OptOutReceipt> {
      const scope: OptOutScope = given.offersOnly ? "marketing" : "all";
      const kind = "customer" in target ? "customer" : "email" in target ? "email" : "phone";
      const channels = optOutChannels(kind, given.channels);
      const now = deps.now();
      const countAs = (channel: Channel) => ({
        entry: {
          outcome: "optout",
          channel,
          kind: "-",
          ruleId: "-",
          reason: scope === "all" ? "operator" : "operator-offers",
        },
        now,
      });
      const newly: Channel[] = [];
      const covered = new Set<string>();
      // Numbers are timed before they are suppressed (noteNumbersOptingOut): a START replayed from
      // the spool must not undo it, as it does not undo a STOP or a 9.
      const noteTimeOf = (phones: readonly string[]) =>
        suppressions.noteNumbersOptingOut(
          channels,
          phones.map((phone) => ({ address: phone })),
          scope,
          now,
        );
      let auditTarget: string;
      let member: string | undefined;
      let customerId: string | undefined;
      if ("customer" in target) {
        customerId = operatorId(target.customer, "customer");
        member = await suppressions.customerMember(customerId);
        const { shard, history } = shards.ofCustomer(customerId);
        const { store } = shards.of(shard);
        const bought = await history.purchasesOf(customerId);
        if (
          bought.length === 0 &&
          (await audit.entries({ customer: member, limit: 1 })).length === 0
        )
          throw new OperatorError(
            said`no customer ${quote(JSON.stringify(customerId))} is known; to opt out an address no customer is known by, give it (--email ADDRESS or --phone E164; POST /admin/v1/opt-outs)`,
            "not-found",
          );
        const addresses = await knownAddresses(
          { history, store, ...(deps.logger && { logger: deps.logger }) },
          customerId,
        );
        await noteTimeOf(addresses.get("sms") ?? []);
        for (const channel of channels) {
          if (await suppressions.suppress(channel, { customerId }, countAs(channel), scope))
            newly.push(channel);
          for (const address of addresses.get(channel) ?? []) {
            await suppressions.suppress(channel, { address }, undefined, scope);
            covered.add(address);
          }
        }
        auditTarget = `customer ${member}`;
      } else {
        const address = "email" in target ? optOutEmail(target.email) : optOutPhone(target.phone);
        if (kind === "phone") await noteTimeOf([address]);
        for (const channel of channels)
          if (await suppressions.suppress(channel, { address }, countAs(channel), scope))
            newly.push(channel);
        covered.add(address);
        auditTarget = `${kind} ${await suppressions.addressMember(address)}`;
      }
      const what = `${channels.join(", ")}: ${scope === "all" ? "everything" : "offers only"}`;
      await record(
        {
          by: given.by,
          action: "opt-out",
          target: auditTarget,
          ...(member && { customer: member }),
          detail: `${what}; ${covered.size} ${covered.size === 1 ? "address" : "addresses"} covered${newly.length === 0 ? "; already opted out" : ""}`,
        },
        now,
      );
      return {
        customer: customerId ?? null,
        address: kind === "customer" ? null : kind,
        channels,
        purposes: scope === "marketing" ? ["marketing"] : null,
        addressesCovered: covered.size,
        newlyOptedOut: newly,
        optedOutAt: new Date(now).toISOString(),
        by: given.by,
      };
    },

    /** Erases a customer (erase-customer.ts); idempotent. */
    async erase(customerId: string, options: Parameters<typeof eraseCustomer>[1]) {
      const receipt = await eraseCustomer(operatorId(customerId, "customer"), options);
      deps.onErased?.();
      return receipt;
    },

    /**
     * Erases every customer who used an email address or phone number (as events store it): those
     * the address index knows, and those of purchases still on the input queue or refused there
     * (in no index yet); each erasure clears the address too, with the customer's own. With no
     * such customer it throws not-found, naming erasure by customer id for what is kept without
     * an address, and erases and clears nothing.
     */
    async eraseByAddress(address: string, by: string): Promise<ErasureReceipt[]> {
      const stored = asStored(address);
      const ids = new Set(await customers.customersOf(stored));
      // A purchase still on the input queue (or refused there) is in no index yet.
      if (deps.events) for (const id of await customersQueuedWith(deps.events, stored)) ids.add(id);
      if (ids.size === 0) throw noCustomerWith(address, true);
      const receipts: ErasureReceipt[] = [];
      for (const id of ids) {
        receipts.push(await eraseCustomer(id, { by, addresses: [stored] }));
        deps.onErased?.();
      }
      return receipts;
    },

    /** Pending follow-ups by local due date (rules' default zone), channel and rule. */
    async schedule(days: number): Promise<{ days: ScheduleDay[] }> {
      const zone = deps.rules().defaults.timezone;
      const now = DateTime.fromMillis(deps.now());
      const rows = await readSchedule(
        async (from, n) => [...(await ledger.pendingCounts(from, n)), ...(await postponed())],
        zone,
        now,
        days,
      );
      return { days: rows };
    },

    postponed,

    /**
     * The owners' report model of a period (what `followups report`, the console and the owners'
     * emails show), its upcoming follow-ups counted on the day they will go.
     */
    report(period: ReportPeriod, ownerName: string): Promise<ReportModel> {
      const sources = reportSourcesOn(redis, prefix, deps.shards, postponed, deps.logger);
      return collectReport(sources, deps.rules(), ownerName, period, deps.now());
    },

    /**
     * Events the worker refused, latest first (at most `limit`): invalid ones, and those whose
     * intake failed on every attempt, as they stay in the input queue's failed set with their
     * reasons. The reason only, never the event's content.
     */
    async refusedEvents(limit: number): Promise<RefusedEvent[]> {
      if (!deps.events) return [];
      const jobs = await deps.events.getFailed(0, limit - 1).catch((error: unknown) => {
        // BullMQ's read of the failed set throws on one job whose data is not JSON.
        if (error instanceof SyntaxError) return undefined;
        throw error;
      });
      if (!jobs) return failedOneByOne(redis, deps.events, limit);
      return jobs.flatMap((job) => (job ? [refusedEvent(job)] : []));
    },

    /** The audit trail, latest first (`until`: before that instant, epoch ms). */
    async auditEntries(
      options: { since?: number; until?: number; limit?: number } = {},
    ): Promise<TimelineAuditEntry[]> {
      return (await audit.entries(options)).map(timelineAudit);
    },

    /** Records an operator action that is not one of the above (console sign-in). */
    recordAction: record,
  };
}

export type OperatorTools = ReturnType<typeof createOperatorTools>;

/** What a refused event's listing reads of its failed job. */
interface FailedJob {
  readonly id?: string;
  readonly name: string;
  readonly data: unknown;
  readonly timestamp: number;
  readonly finishedOn?: number;
  readonly attemptsMade: number;
  readonly failedReason?: string;
}

function refusedEvent(job: FailedJob): RefusedEvent {
  const data = job.data as { id?: unknown } | undefined;
  return {
    eventId: boundedForListing(typeof data?.id === "string" ? data.id : (job.id ?? "")),
    type: boundedForListing(job.name),
    refusedAt: new Date(job.finishedOn ?? job.timestamp).toISOString(),
    attempts: job.attemptsMade,
    reason: job.failedReason ?? "",
  };
}

/**
 * The failed set read job by job from its hashes, for when one job's data is not JSON (damaged,
 * or written by a client that is not BullMQ's): that one is listed by its job id, its reason
 * saying so, and the others as usual.
 */
async function failedOneByOne(
  redis: RedisClient,
  events: Queue,
  limit: number,
): Promise<RefusedEvent[]> {
  const ids = await events.getRanges(["failed"], 0, limit - 1);
  const fields = ["name", "data", "timestamp", "finishedOn", "atm", "failedReason"];
  const read = await Promise.all(ids.map((id) => redis.hmget(events.toKey(id), ...fields)));
  return read.flatMap(([name, raw, timestamp, finishedOn, attempts, reason], index) => {
    const id = ids[index];
    if (id === undefined || name === null || name === undefined) return []; // gone meanwhile
    let data: unknown;
    let failedReason = reason ?? "";
    try {
      data = JSON.parse(raw || "{}");
    } catch {
      // The intake refused it saying so already (IntakeWorker), or it failed before its data broke.
      if (!failedReason.includes("not JSON"))
        failedReason = `${failedReason}${failedReason ? "; " : ""}its data is not JSON`;
    }
    return [
      refusedEvent({
        id,
        name,
        data,
        timestamp: Number(timestamp ?? 0),
        ...(finishedOn && { finishedOn: Number(finishedOn) }),
        attemptsMade: Number(attempts ?? 0),
        failedReason,
      }),
    ];
  });
}

/**
 * An id or type as a refused event's publisher wrote it, cut when far longer than the contract
 * allows (its first 64 characters and its length): one such event would widen every line of the
 * listing to its length. The failed job keeps it whole.
 */
function boundedForListing(text: string): string {
  const length = contractLength(text);
  return length <= MAX_ID_LENGTH ? text : `${cutText(text, 64)}… (${length} characters)`;
}

/**
 * An event the worker refused (`followups refused`): one from the input queue's failed set, so it
 * came through the queue, whoever enqueued it (`POST /v1/events` refuses an invalid event with a
 * 400 and keeps nothing); which publisher enqueued it the job does not say.
 */
export interface RefusedEvent {
  /** The event's id (the job's, for one whose content names none). */
  readonly eventId: string;
  /** Its type as the job is named (`purchase.completed`, …). */
  readonly type: string;
  readonly refusedAt: string;
  /** Intake attempts made (1 for an invalid event, which is not retried). */
  readonly attempts: number;
  /** Why: every problem and its path for an invalid event, else the last error. */
  readonly reason: string;
}

/** How phone numbers are looked up: no country is guessed for a national number. */
export const PHONE_LOOKUP_FORMAT =
  "phone numbers are looked up in international format, + and the country code (+447400900020, not 07400 900020 or 0044 7400 900020)";

/** Whether an address is meant as a phone number but is not one in international format. */
export function notInternationalPhone(address: string): boolean {
  return !address.includes("@") && normalizePhone(address) === undefined;
}

/**
 * No customer is known by an address: said so, and for a phone number not in international
 * format (national `07400 900020`, `0044 …`) that numbers are looked up in it, so that an
 * operator does not take "not known" for "nothing to erase"; for an erasure, that what remains of
 * a customer whose records expired is erased by id (ERASE_BY_ID). The number is not repeated (the
 * answer may be logged).
 */
function noCustomerWith(address: string, erasing = false): OperatorError {
  const hint = notInternationalPhone(address) ? `; ${PHONE_LOOKUP_FORMAT}` : "";
  return new OperatorError(
    `no customer is known with that address${hint}${erasing ? `; ${ERASE_BY_ID}` : ""}`,
    "not-found",
  );
}

/**
 * Why an erasure by address can find no one although the customer's history is still kept: the
 * address index forgets an address with the last record that holds it, and the history, which
 * holds no address, is found by the customer id alone.
 */
const ERASE_BY_ID =
  "a customer is found by an address only while the record of a purchase of theirs with it is kept (RECORD_RETENTION_DAYS after its last step): what remains after that (their purchase history, kept two years without any address) is erased by their customer id, followups erase ID";

/**
 * An address as events store it: an email with an internationalised domain in its ASCII form
 * (`ana@bücher.de` → `ana@xn--bcher-kva.de`), a phone number in E.164 (`+44 20 …` → `+4420…`).
 */
function asStored(address: string): string {
  return address.includes("@")
    ? (eventEmailAddress(address) ?? address)
    : (normalizePhone(address) ?? address);
}

/**
 * The channels of an operator's opt-out, in the usual order, each once: by default every channel
 * the target can be reached on (a customer: all; an email address: email; a phone number: SMS and
 * calls). An address is refused channels it cannot be reached on.
 */
function optOutChannels(
  kind: "customer" | "email" | "phone",
  given: readonly Channel[] | undefined,
): Channel[] {
  const reachable: readonly Channel[] =
    kind === "customer" ? CHANNELS : kind === "email" ? ["email"] : PHONE_CHANNELS;
  if (given === undefined) return [...reachable];
  const unknown = given.find((channel) => !CHANNELS.includes(channel));
  if (unknown !== undefined)
    throw new OperatorError(
      said`not a channel: ${quote(JSON.stringify(unknown))} (expected email, sms or voice)`,
      "invalid",
    );
  if (given.length === 0)
    throw new OperatorError("name at least one channel: email, sms or voice", "invalid");
  const unreachable = given.find((channel) => !reachable.includes(channel));
  if (unreachable !== undefined)
    throw new OperatorError(
      kind === "email"
        ? `an email address is reached by email only, not ${unreachable}: give the phone number, or the customer id, for texts and calls`
        : "a phone number is reached by sms and voice only, not email: give the email address, or the customer id, for emails",
      "invalid",
    );
  return CHANNELS.filter((channel) => given.includes(channel));
}

/** An email address an operator opts out, as events store it. */
function optOutEmail(address: string): string {
  const stored = eventEmailAddress(address);
  if (stored === undefined)
    throw new OperatorError("not an email address (expected name@domain)", "invalid");
  return stored;
}

/** A phone number an operator opts out, in E.164 as events store it; else refused, saying how. */
function optOutPhone(number: string): string {
  const stored = normalizePhone(number);
  if (stored === undefined)
    throw new OperatorError(
      "not a phone number in international format: give + and the country code (+447400900020, not 07400 900020 or 0044 7400 900020)",
      "invalid",
    );
  return stored;
}

/** What a customer opted out of, in an operator's words (channel ids are not). */
const OPTED_OUT_OF: Record<Channel, string> = { email: "email", sms: "SMS", voice: "calls" };
/** How offers a customer opted out of would have come. */
const OFFERS_BY: Record<Channel, string> = { email: "email", sms: "SMS", voice: "phone" };
