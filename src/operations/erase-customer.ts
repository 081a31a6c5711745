import { readdir, readFile, unlink } from "node:fs/promises";
import path from "node:path";
import { Job, type JobType, type Queue } from "bullmq";
import type { Redis } from "ioredis";
import { normalizeAddress } from "../domain/address-hash.js";
import { CHANNELS, normalizePhone, phoneInCountryOf } from "../domain/events.js";
import type { RuleSet } from "../domain/rules.js";
import { type FollowUpJobData, followUpJobId, latestSendJobId } from "../queue/names.js";
import { stepLabels } from "../queue/step-labels.js";
import { ALERT_NAMES } from "../reports/owner-alert-email.js";
import type { AuditTrail } from "../store/audit-trail.js";
import type { CustomerIndex } from "../store/customer-index.js";
import type { DiscountCodes } from "../store/discount-codes.js";
import { idHash, StoreKeys, shardScope } from "../store/keys.js";
import type { OrderStore } from "../store/order-store.js";
import { isCluster, type RedisClient } from "../store/redis-client.js";
import type { ShardStores, Shards } from "../store/shards.js";
import { DELIVERY_SETTLED, decodeRef, SmsReferences } from "../store/sms-references.js";
import type { StepRecord } from "../store/step-record.js";
import type { SuppressionList } from "../store/suppression-list.js";
import { receiptsOfSent } from "../store/webhook-receipts.js";
import type { EventInShard } from "./locate-event.js";

/**
 * The right to erasure. Everything personal about a customer goes: the stored purchases and what
 * the step records say (provider ids, reasons, replies), their history, the address and order
 * indexes, cap windows, SMS references, replies (and their entries in the indexes of replies and
 * of texts a final SMS status failed), the jobs that carry their events or steps, and
 * the outbox files addressed to them. Pending steps are cancelled first (counted, reason `erased`).
 * What stays is anonymous: aggregate counts, step states, opt-outs as keyed hashes (an erased
 * customer who opted out stays opted out), and a keyed hash of the customer with the time of the
 * erasure, so that their events queued before it are dropped when they arrive. Then Redis rewrites
 * its append-only file, so the data leaves the disk too. Idempotent: a second run finds nothing.
 */

/** What an erasure did, without personal data: printed, returned by the API, kept in the audit. */
export interface ErasureReceipt {
  readonly erasedAt: string;
  readonly by: string;
  /** The customer's keyed hash (as opt-outs and the audit trail name them). */
  readonly customer: string;
  readonly purchases: number;
  readonly stepsCancelled: number;
  /** Steps being sent at that moment: their send finishes; erase again afterwards. */
  readonly stepsInFlight: number;
  readonly keysDeleted: number;
  readonly jobsRemoved: number;
  readonly outboxFilesRemoved: number;
  /**
   * Webhooks moved aside to the spool's `failed/` (WEBHOOK_SPOOL_DIR, of the process that ran the
   * erasure) naming one of the customer's numbers or calls, removed.
   */
  readonly spoolFilesRemoved: number;
  /**
   * Discount codes issued to the customer, revoked: a till is told `revoked`, or `redeemed` by
   * no order named for one redeemed before.
   */
  readonly codesRevoked: number;
  /** Opt-outs kept as keyed hashes. */
  readonly optOutsKept: number;
  /** `rewriting` (BGREWRITEAOF started), `off` (no append-only file), or why it could not start. */
  readonly appendOnlyFile: string;
  /**
   * Folders of this process (OUTBOX_DIR, WEBHOOK_SPOOL_DIR) that could not be listed, each with
   * the error; absent when every one was searched (or does not exist). Files in them about the
   * customer are still there.
   */
  readonly foldersNotSearched?: readonly string[];
}

export interface EraseDeps {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly rules: () => RuleSet;
  /** Every shard's stores: a customer's state is all in their shard's. */
  readonly shards: Shards<Pick<ShardStores, "store" | "history">>;
  readonly orders: OrderStore;
  /** Discount codes: those issued to the customer are revoked. */
  readonly codes: Pick<DiscountCodes, "revokeByHash">;
  /** The purchase events linked to an order, each with its shard. */
  readonly eventsOfOrder: (orderId: string) => Promise<readonly EventInShard[]>;
  readonly suppressions: SuppressionList;
  readonly customers: CustomerIndex;
  readonly audit: AuditTrail;
  /** Every shard's follow-ups queue: a customer's jobs are in their shard's. */
  readonly followUps: Shards<Queue<FollowUpJobData>>;
  /** The input queue: its finished jobs carry whole events. */
  readonly events?: Queue;
  /** OUTBOX_DIR, whose files hold rendered messages. */
  readonly outboxDir?: string;
  /**
   * The webhook spool (WEBHOOK_SPOOL_DIR) of this process: its files moved aside to `failed/`
   * hold numbers and texts until an operator acts (http/webhook-spool.ts WebhookSpool).
   */
  readonly webhookSpool?: FailedWebhooks;
  readonly now: () => number;
}

/** What a spooled webhook moved aside to `failed/` names (http/webhook-spool.ts). */
export interface FailedWebhook {
  readonly numbers: readonly string[];
  readonly followUpId?: string;
  /** A STOP or a 9 on a call: kept, as only handling it opts the number out. */
  readonly optOut: boolean;
  readonly text: string;
}

/** The spool's failed webhooks, as erasure removes them. */
export interface FailedWebhooks {
  removeFailed(matches: (file: FailedWebhook) => Promise<boolean>): Promise<number>;
}

/**
 * The charge id of a step's latest SMS that Twilio may still report `canceled` or `failed` (sent,
 * no other final status; or failed by such a report, which Twilio may post again), so that the
 * report gives its charge back after the erasure: its send's job id, as note-sms-status.lua
 * names it (the step's, a resend's `-r<n>` or a retry's `-q<n>`; for a step both resent and
 * retried, its latest requeue's, or for a record that does not tell, the one of the later
 * frequency-cap slot, none without a slot). Undefined otherwise.
 */
async function openSmsCharge(
  redis: RedisClient,
  keys: StoreKeys,
  customerId: string,
  eventId: string,
  stepId: string,
  record: StepRecord,
): Promise<string | undefined> {
  if (record.channel !== "sms" || record.providerId === undefined) return undefined;
  if (record.state !== "sent" && record.state !== "failed") return undefined;
  const status = record.delivery?.status ?? "";
  if (DELIVERY_SETTLED.has(status)) return undefined;
  if (record.state === "failed" && status !== "canceled" && status !== "failed") return undefined;
  const base = followUpJobId(eventId, stepId);
  const exact = latestSendJobId(base, record);
  if (exact !== undefined) return exact;
  // Resent and retried, requeued by a version that did not note which came last: the later slot.
  const sends = [`${base}-r${record.resends}`, `${base}-q${record.retries}`];
  const cap = keys.capWindow("sms", customerId);
  const slots = await Promise.all(sends.map(async (id) => redis.zscore(cap, id)));
  const [resent, retried] = slots.map((at) => (at === null ? undefined : Number(at)));
  if (resent === undefined && retried === undefined) return undefined;
  return (resent ?? -1) >= (retried ?? -1) ? sends[0] : sends[1];
}

/** How long an erasure is remembered: events from before it arriving later are dropped. */
export const ERASURE_MEMORY_MS = 400 * 86_400_000;
const JOB_PAGE = 500;

export function createEraser(deps: EraseDeps) {
  if (deps.followUps.count !== deps.shards.count)
    throw new RangeError(
      `${deps.followUps.count} follow-ups queues for ${deps.shards.count} shards of stores`,
    );
  return async (
    customerId: string,
    options: { by: string; addresses?: readonly string[] },
  ): Promise<ErasureReceipt> => {
    const now = deps.now();
    // Everything about the customer is in their shard: its stores, keys and follow-ups queue.
    const shard = deps.shards.shardOf(customerId);
    const { store, history } = deps.shards.of(shard);
    const keys = new StoreKeys(shardScope(deps.prefix, shard, deps.shards.count));
    const references = new SmsReferences(deps.redis, deps.prefix);
    const followUps = deps.followUps.of(shard);
    const member = await deps.suppressions.customerMember(customerId);
    // Marked first: a purchase of theirs being taken in right now is either among the purchases
    // read below, or schedules nothing and files no address nor order link (schedule-steps.lua,
    // link-purchase.lua and remember-customer.lua check these markers).
    await history.noteErasure(customerId, now, ERASURE_MEMORY_MS);
    await deps.customers.markErased(customerId, now, ERASURE_MEMORY_MS);
    const eventIds = new Set((await history.purchasesOf(customerId)).map((p) => p.eventId));
    // Their orders and phone numbers as their history notes them (by hash), which outlive the
    // records of their purchases: an order's link and refunds, a number's latest check-in and
    // "texted before" mark are global keys, found from here also once a record has gone.
    const leads = await history.erasureLeads(customerId);
    const addresses = new Set((options.addresses ?? []).map(normalizeAddress));
    const orderIds = new Set<string>();
    let stepsCancelled = 0;
    let stepsInFlight = 0;
    let keysDeleted = 0;
    // The provider's ids of their SMS and calls: the webhooks' receipts name them too.
    const providerIds: { channel: "sms" | "voice"; id: string }[] = [];
    // An email's Message-ID leads a reply to its step (resends' earlier ids too: the record
    // stops filing replies once erased, erase-event.lua).
    const emailIds: string[] = [];
    const callIds: string[] = [];
    // Their discount codes, each an HMAC of their id, whose stored form names them and the order
    // that redeemed it: found through the steps that sent them, revoked before the record that
    // notes them is scrubbed, and through their history (which notes each code issued to them
    // until it expires), for a code whose purchase's record has expired.
    let codesRevoked = 0;
    const codesSeen = new Set<string>();
    const revoke = async (codeHash: string) => {
      if (codesSeen.has(codeHash)) return;
      codesSeen.add(codeHash);
      if (await deps.codes.revokeByHash(codeHash, now)) codesRevoked++;
    };
    // The events of the orders they placed, found through what is stored of each purchase.
    for (const eventId of [...eventIds]) {
      const stored = await store.storedPurchase(eventId);
      const orderId = stored.kept?.orderId ?? (await store.summary(eventId)).orderId;
      if (orderId) orderIds.add(orderId);
      for (const address of [stored.kept?.customer.email, stored.kept?.customer.phone])
        if (address) addresses.add(normalizeAddress(address));
    }
    for (const orderId of orderIds) {
      // An event in another shard is another customer's.
      for (const linked of await deps.eventsOfOrder(orderId)) {
        if (linked.shard !== shard || eventIds.has(linked.eventId)) continue;
        if ((await store.storedPurchase(linked.eventId)).customerId === customerId)
          eventIds.add(linked.eventId);
      }
    }
    for (const eventId of eventIds) {
      for (const [stepId, record] of await store.allStepRecords(eventId)) {
        // A call in progress keeps its words (a first name, a purchase) under its follow-up id.
        if (record.channel === "voice") {
          const jobId = followUpJobId(eventId, stepId);
          callIds.push(jobId);
          for (let n = 1; n <= record.resends; n++) callIds.push(`${jobId}-r${n}`);
          for (let n = 1; n <= record.retries; n++) callIds.push(`${jobId}-q${n}`);
        }
        // The ids of sends a resend or retry followed too: their references name the step.
        for (const id of [...(record.earlierProviderIds ?? []), record.providerId ?? ""]) {
          if (id === "") continue;
          if (record.channel === "email") emailIds.push(id);
          else providerIds.push({ channel: record.channel === "voice" ? "voice" : "sms", id });
        }
        if (record.codeHash) await revoke(record.codeHash);
        // A text Twilio may still report `canceled` or `failed` gives its charge back then, by
        // its charge id kept without the reference that goes below (the only way to it).
        const charge = await openSmsCharge(deps.redis, keys, customerId, eventId, stepId, record);
        if (charge !== undefined && record.providerId !== undefined)
          await references.keepErasedCharge(record.providerId, charge);
        if (record.state === "sending") stepsInFlight++;
        if (record.state !== "scheduled") continue;
        const labels = stepLabels(deps.rules(), stepId, record);
        const changed = await store.transition(
          eventId,
          stepId,
          ["scheduled"],
          {
            state: "cancelled",
            reason: { code: "erased", text: "the customer's data was erased" },
          },
          now,
          { outcome: "cancelled", ...labels, reason: "erased" },
          record.dueAt,
        );
        if (changed) stepsCancelled++;
      }
      await store.erase(eventId);
    }
    for (const codeHash of await history.codesOf(customerId)) await revoke(codeHash);
    // An order's refunds (its own key) and its links (entries in a bucket shared with others).
    const orderHashes = new Set([...leads.orders, ...[...orderIds].map(idHash)]);
    for (const orderHash of orderHashes)
      if (await deps.orders.forgetByHash(orderHash)) keysDeleted++;
    const phones = [...addresses].filter((a) => !a.includes("@"));
    const phoneMembers = [
      ...new Set([
        ...leads.numbers,
        ...(await Promise.all(phones.map((phone) => deps.suppressions.addressMember(phone)))),
      ]),
    ];
    const doomed = [
      ...CHANNELS.map((channel) => keys.capWindow(channel, customerId)),
      ...providerIds.map(({ id }) => keys.smsMessage(id)),
      // Twilio's statuses kept for a reference not written yet (a send cut short, a callback late).
      ...providerIds.map(({ id }) => keys.earlySmsStatuses(id)),
      // The receipts of their status callbacks and calls' webhooks (kept a week against replays:
      // a replay finds neither the message's reference nor the call's record now).
      ...providerIds.flatMap(({ channel, id }) =>
        receiptsOfSent(channel, id).map((receipt) => keys.webhookReceipt(receipt)),
      ),
      ...emailIds.map((messageId) => keys.emailMessage(messageId)),
      ...callIds.map((id) => keys.callScript(id)),
      ...phoneMembers.map((member) => keys.latestCheckIn(member)),
      // That the number was texted (its next first SMS says how to opt out again).
      ...phoneMembers.map((member) => keys.textedNumber(member)),
      ...phones.map((phone) => keys.legacyLatestCheckIn(phone)),
      keys.customerHistory(customerId),
      keys.recentSteps(customerId),
      keys.lastSent(customerId),
      keys.checkIns(customerId),
      keys.thankYouGroup(customerId),
    ];
    for (const key of doomed) keysDeleted += await deps.redis.del(key);
    // Replies are indexed as `<eventId>\n<stepId>\n<n>[\n@<shard>]` (before December 2026
    // without the number), kept 400 days: found by the event ids of the customer's history, so
    // also those of a purchase whose record has expired (and with it the step ids).
    const indexed = await deps.redis.zrange(keys.replies(), "0", "-1");
    const theirs = indexed.filter((member) => {
      const { lines, shard: of } = decodeRef(member);
      return of === shard && eventIds.has(lines[0] ?? "");
    });
    if (theirs.length > 0) await deps.redis.zrem(keys.replies(), ...theirs);
    // Their steps a final SMS status failed (`<eventId>/<stepId>`, kept 30 days): an event id may
    // say who bought, and `followups failed` would list them still (their step stays failed).
    const failedTexts = (await store.smsStatusFailures())
      .map(({ ref }) => ref)
      .filter((ref) => eventIds.has(ref.slice(0, ref.lastIndexOf("/"))));
    if (failedTexts.length > 0) await deps.redis.zrem(keys.smsStatusFailures(), ...failedTexts);
    await deps.customers.forget(customerId, [...addresses]);
    const optOutsKept = await countOptOuts(deps, customerId);
    await deps.suppressions.hashCustomerEntries(customerId, [...addresses]);
    await history.markErased(customerId, now, ERASURE_MEMORY_MS);
    const removedJobIds = new Set<string>();
    // BullMQ's event streams repeat failure reasons, which can quote an address or number.
    const needles = [customerId, ...addresses].map((text) => text.toLowerCase());
    await removeJobs(followUps, (job) => eventIds.has(String(job.data?.e)), removedJobIds);
    if (deps.events) {
      const events = deps.events;
      await removeJobs(
        events,
        (job) =>
          carriesCustomer(job.data, customerId, addresses) || refundOf(job.data, orderHashes),
        removedJobIds,
        undefined,
        (data) => needles.some((needle) => data.toLowerCase().includes(JSON.stringify(needle))),
      );
    }
    const jobsRemoved = removedJobIds.size;
    for (const queue of [followUps, deps.events]) {
      if (queue)
        await scrubEventStream(deps.redis, queue.keys.events ?? "", removedJobIds, needles);
    }
    // A folder that cannot be listed is named in the receipt; the erasure goes on and is recorded.
    const foldersNotSearched: string[] = [];
    const notSearched = (folder: string) => (error: unknown) => {
      if (typeof (error as NodeJS.ErrnoException).code !== "string") throw error;
      foldersNotSearched.push(`${folder}: ${(error as Error).message}`);
      return 0;
    };
    const outboxFilesRemoved = deps.outboxDir
      ? await removeOutboxFiles(deps.outboxDir, {
          addresses,
          customerId,
          orderIds: [...orderIds],
          orderHashes,
        }).catch(notSearched("OUTBOX_DIR"))
      : 0;
    const spoolFilesRemoved = deps.webhookSpool
      ? await deps.webhookSpool
          .removeFailed(
            failedWebhookOf(deps.suppressions, phones, new Set(phoneMembers), new Set(callIds)),
          )
          .catch(notSearched("WEBHOOK_SPOOL_DIR"))
      : 0;
    await deps.audit.scrubCustomer(member);
    const appendOnlyFile = await rewriteAppendOnlyFile(deps.redis);
    const receipt: ErasureReceipt = {
      erasedAt: new Date(now).toISOString(),
      by: options.by,
      customer: member,
      purchases: eventIds.size,
      stepsCancelled,
      stepsInFlight,
      keysDeleted,
      jobsRemoved,
      outboxFilesRemoved,
      spoolFilesRemoved,
      codesRevoked,
      optOutsKept,
      appendOnlyFile,
      ...(foldersNotSearched.length > 0 && { foldersNotSearched }),
    };
    const { erasedAt: _at, by: _by, customer: _customer, ...counts } = receipt;
    await deps.audit.record({
      at: now,
      by: options.by,
      action: "erase",
      target: `customer ${member}`,
      customer: member,
      detail: JSON.stringify(counts),
    });
    return receipt;
  };
}

export type EraseCustomer = ReturnType<typeof createEraser>;

async function countOptOuts(deps: EraseDeps, customerId: string): Promise<number> {
  let count = 0;
  for (const channel of CHANNELS) {
    if (await deps.suppressions.isSuppressed(channel, { customerId })) count++;
    if (await deps.suppressions.isSuppressed(channel, { customerId }, "marketing")) count++;
  }
  return count;
}

/** Whether an input-queue job's event is about the customer (by id or by address). */
function carriesCustomer(data: unknown, customerId: string, addresses: ReadonlySet<string>) {
  if (!data || typeof data !== "object") return false;
  const event = data as { customerId?: unknown; customer?: Record<string, unknown> };
  const theirs = (id: unknown) => idOf(id) === customerId;
  if (theirs(event.customerId) || theirs(event.customer?.id)) return true;
  return carriesAddress(event, addresses);
}

/**
 * The customer id an event names, as erasure compares it: a string trimmed (as intake reads it:
 * a publisher's padded id is the same customer), or a whole JSON number as JSON writes it (123
 * is customer "123"; refused, but it names them) read exactly (up to 2^53). Anything else names
 * no one.
 */
function idOf(id: unknown): string | undefined {
  if (typeof id === "string") return id.trim();
  // A whole number JSON read exactly: beyond 2^53 it was rounded, and may spell another id.
  if (typeof id === "number" && Number.isSafeInteger(id)) return String(id);
  return undefined;
}

/**
 * Whether an input-queue job is a refund of one of the customer's orders (by the order id's
 * idHash): it names no customer, but its order, also in the reason a refused one keeps.
 */
function refundOf(data: unknown, orderHashes: ReadonlySet<string>): boolean {
  if (!data || typeof data !== "object") return false;
  const event = data as { type?: unknown; orderId?: unknown };
  return (
    event.type === "purchase.refunded" &&
    typeof event.orderId === "string" &&
    orderHashes.has(idHash(event.orderId.trim()))
  );
}

/**
 * Whether an event names one of the addresses (normalised, phone numbers in E.164): a job added
 * by hand may write a number as the customer typed it (`+44 20 7946 0789`), and a refused one
 * without its country code (`07911 123456`): that is one of the numbers when read in that
 * number's own country it is the same number (phoneInCountryOf).
 */
function carriesAddress(
  event: { customer?: Record<string, unknown> },
  addresses: ReadonlySet<string>,
): boolean {
  return [event.customer?.email, event.customer?.phone].some((address) => {
    if (typeof address !== "string") return false;
    if (addresses.has(normalizeAddress(address))) return true;
    if (address.includes("@")) return false;
    const phone = normalizePhone(address);
    if (phone !== undefined) return addresses.has(normalizeAddress(phone));
    for (const known of addresses)
      if (!known.includes("@") && phoneInCountryOf(address, known) === known) return true;
    return false;
  });
}

/**
 * The customers whose events on the input queue (waiting, delayed, failed or kept finished) name
 * an address: a purchase not taken in yet, or refused, is in no index.
 */
export async function customersQueuedWith(events: Queue, address: string): Promise<string[]> {
  const addresses = new Set([normalizeAddress(address)]);
  const found = new Set<string>();
  for (const state of ["wait", "delayed", "prioritized", "failed", "completed"] as const) {
    for (let start = 0; ; start += JOB_PAGE) {
      const { jobs, read } = await jobsPage(events, state, start, start + JOB_PAGE - 1);
      for (const job of jobs) {
        const event = job?.data as { customerId?: unknown; customer?: Record<string, unknown> };
        if (!event || typeof event !== "object" || !carriesAddress(event, addresses)) continue;
        const id = idOf(event.customer?.id ?? event.customerId);
        if (id) found.add(id);
      }
      if (read < JOB_PAGE) break;
    }
  }
  return [...found];
}

/**
 * Deletes the entries of a queue's event stream about the removed jobs or quoting the customer
 * (an id or address, lower case).
 */
export async function scrubEventStream(
  redis: RedisClient,
  key: string,
  jobIds: ReadonlySet<string>,
  needles: readonly string[],
): Promise<void> {
  if (!key) return;
  let from = "-";
  for (;;) {
    const entries = await redis.xrange(key, from, "+", "COUNT", JOB_PAGE);
    const doomed: string[] = [];
    for (const [id, fields] of entries) {
      const jobAt = fields.indexOf("jobId");
      const jobId = jobAt >= 0 ? fields[jobAt + 1] : undefined;
      const text = fields.join("\n").toLowerCase();
      if ((jobId && jobIds.has(jobId)) || needles.some((needle) => text.includes(needle)))
        doomed.push(id);
    }
    if (doomed.length > 0) await redis.xdel(key, ...doomed);
    const last = entries.at(-1);
    if (!last || entries.length < JOB_PAGE) return;
    from = `(${last[0]}`;
  }
}

/**
 * Removes the queue's jobs that match, in the given states (by default all but active ones); a
 * job whose data is not JSON only when `unreadableMatches` takes its data as stored.
 */
export async function removeJobs(
  queue: Queue,
  matches: (job: Job) => boolean,
  removedIds: Set<string> = new Set(),
  states: readonly JobType[] = ["completed", "failed", "wait", "delayed", "prioritized"],
  unreadableMatches?: (data: string) => boolean,
): Promise<number> {
  let removed = 0;
  for (const state of states) {
    for (let start = 0; ; start += JOB_PAGE) {
      const { jobs, unreadable, read } = await jobsPage(queue, state, start, start + JOB_PAGE - 1);
      let gone = 0;
      const remove = (id: string | undefined, removal: Promise<unknown>) =>
        removal.then(
          () => {
            gone++;
            if (id) removedIds.add(id);
          },
          () => undefined,
        );
      for (const job of jobs) {
        if (job && matches(job)) await remove(job.id, job.remove());
      }
      for (const { id, data } of unreadable) {
        if (unreadableMatches?.(data)) await remove(id, queue.remove(id));
      }
      removed += gone;
      if (read < JOB_PAGE) break;
      start -= gone;
    }
  }
  return removed;
}

/**
 * A page of a queue's jobs in one state as getJobs reads it, with the jobs whose data is not
 * JSON (damaged, or written by a client that is not BullMQ's) apart, by id with their data as
 * stored: getJobs throws on one such job, which stopped every erasure. `read`: the page's length.
 */
async function jobsPage(
  queue: Queue,
  state: JobType,
  start: number,
  end: number,
): Promise<{ jobs: Job[]; unreadable: { id: string; data: string }[]; read: number }> {
  try {
    const jobs = await queue.getJobs([state], start, end, true);
    return { jobs: jobs.filter(Boolean), unreadable: [], read: jobs.length };
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
  }
  const ids = await queue.getRanges([state], start, end, true);
  const jobs: Job[] = [];
  const unreadable: { id: string; data: string }[] = [];
  for (const id of ids) {
    try {
      const job = await Job.fromId(queue, id);
      if (job) jobs.push(job);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      unreadable.push({ id, data: (await queue.backend.getJobData(id))?.data ?? "" });
    }
  }
  return { jobs, unreadable, read: ids.length };
}

/**
 * Whether a webhook moved aside to the spool's `failed/` is the customer's: it came from or to one
 * of their numbers (known in plain, or by its keyed hash as their history notes it), belongs to
 * one of their calls, or its text names one of their numbers (a file that does not read as a
 * webhook, a reply quoting it). An opt-out is kept: moved back into the spool, it still opts the
 * number out.
 */
function failedWebhookOf(
  suppressions: Pick<SuppressionList, "addressMember">,
  phones: readonly string[],
  members: ReadonlySet<string>,
  callIds: ReadonlySet<string>,
): (file: FailedWebhook) => Promise<boolean> {
  const quoted = phones.map(
    (phone) => new RegExp(`(?<!\\d)${phone.replace(/[+]/g, "\\+")}(?!\\d)`),
  );
  return async (file) => {
    if (file.optOut) return false;
    if (file.followUpId !== undefined && callIds.has(file.followUpId)) return true;
    for (const number of file.numbers) {
      const phone = normalizeAddress(normalizePhone(number) ?? number);
      if (phones.includes(phone) || members.has(await suppressions.addressMember(phone)))
        return true;
    }
    return quoted.some((pattern) => pattern.test(file.text));
  };
}

/**
 * An order as an owner's alert (after ", " or "(") or report (after "· ", wrapped at any space)
 * names it (ALERT_NAMES.order): its id, up to a space or a ")".
 */
const NAMED_ORDER = /(?:, |\(|·\s+)order\s+([^\s)]+)(?=[)\s]|$)/g;

/**
 * Removes outbox files (.json texts and calls, .eml emails) addressed to one of the addresses, or
 * naming the customer where followups writes their ids into a message to someone else: an owner's
 * alert about their reply names them and their order (ALERT_NAMES), an owner's report lists their
 * unhappy reply by its order (with their name and words), a reply forwarded to support gives their
 * address. An id elsewhere in a message is not theirs to go by: a customer id such as
 * `shop` or `2026` is a word in every other customer's email.
 */
async function removeOutboxFiles(
  dir: string,
  customer: {
    readonly addresses: ReadonlySet<string>;
    readonly customerId: string;
    /** Their orders, as their purchases' records name them. */
    readonly orderIds: readonly string[];
    /** Their orders' idHashes, also of purchases whose records have gone (as their history notes them). */
    readonly orderHashes: ReadonlySet<string>;
  },
): Promise<number> {
  const { addresses, customerId, orderIds, orderHashes } = customer;
  const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const named = [
    ...[...addresses].map(
      (address) => new RegExp(`(?<![\\w.@+-])${literal(address)}(?![\\w@-])`, "i"),
    ),
    new RegExp(literal(ALERT_NAMES.customer(customerId))),
    new RegExp(`${literal(ALERT_NAMES.timelinePath(customerId))}(?![\\w%.~!*'()-])`),
    // An alert names the order after ", " or "(", a report's unhappy reply after "· " (its
    // plain text wrapped at spaces: any whitespace between the words).
    ...orderIds.map(
      (orderId) =>
        new RegExp(
          `(?:, |\\(|·\\s+)${literal(ALERT_NAMES.order(orderId)).replace(/ /g, "\\s+")}(?=[)\\s]|$)`,
        ),
    ),
  ];
  // Any order an alert or a report names, by its hash: of a purchase whose record has gone only
  // the hash is known.
  const namesTheirOrder = (text: string) =>
    [...text.matchAll(NAMED_ORDER)].some((match) => orderHashes.has(idHash(match[1] ?? "")));
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    // None written yet; any other error is the caller's to report.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw error;
  }
  let removed = 0;
  for (const name of names) {
    if (!name.endsWith(".json") && !name.endsWith(".eml")) continue;
    const file = path.join(dir, name);
    const raw = await readFile(file).catch(() => undefined);
    if (!raw) continue;
    const { recipients, text } = name.endsWith(".eml") ? await readEmail(raw) : readJson(raw);
    if (
      recipients.some((to) => addresses.has(normalizeAddress(to))) ||
      named.some((pattern) => pattern.test(text)) ||
      namesTheirOrder(text)
    ) {
      await unlink(file).then(
        () => removed++,
        () => undefined,
      );
    }
  }
  return removed;
}

/** What an outbox file says: to whom, and its text to look for the customer in. */
interface OutboxText {
  readonly recipients: readonly string[];
  readonly text: string;
}

function readJson(raw: Buffer): OutboxText {
  const text = raw.toString("utf8");
  try {
    const to = (JSON.parse(text) as { to?: unknown }).to;
    return { recipients: typeof to === "string" ? [to] : [], text };
  } catch {
    return { recipients: [], text };
  }
}

/**
 * An .eml file decoded: quoted-printable bodies break long lines and encode non-ASCII text, and
 * long headers fold, so a raw search would miss an id cut across a line.
 */
async function readEmail(raw: Buffer): Promise<OutboxText> {
  // Loaded here, by the erasure that reads outbox mail: mailparser and what it loads (an HTML
  // parser, charset tables) would otherwise load with every operator command.
  const { simpleParser } = await import("mailparser");
  const mail = await simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true }).catch(
    () => undefined,
  );
  if (!mail) return { recipients: [], text: raw.toString("utf8") };
  const addressed = [mail.to, mail.cc, mail.bcc].flatMap((field) =>
    (Array.isArray(field) ? field : field ? [field] : []).flatMap((list) => list.value),
  );
  return {
    recipients: addressed.flatMap((address) => (address.address ? [address.address] : [])),
    text: [
      ...mail.headerLines.map((header) => header.line.replace(/\r?\n[ \t]+/g, " ")),
      mail.subject ?? "",
      mail.text ?? "",
      typeof mail.html === "string" ? mail.html : "",
    ].join("\n"),
  };
}

/**
 * Starts an append-only-file rewrite, so erased data leaves the disk as well as memory: on a
 * Redis Cluster on every master and replica (a replica's file holds the same data).
 */
async function rewriteAppendOnlyFile(redis: RedisClient): Promise<string> {
  if (isCluster(redis)) {
    const results = await Promise.all(redis.nodes("all").map(rewriteOneAppendOnlyFile));
    return [...new Set(results)].join("; ");
  }
  return rewriteOneAppendOnlyFile(redis);
}

async function rewriteOneAppendOnlyFile(redis: Redis): Promise<string> {
  try {
    const [, enabled] = (await redis.config("GET", "appendonly")) as string[];
    if (enabled !== "yes") return "off";
    await redis.bgrewriteaof();
    return "rewriting";
  } catch (error) {
    const message = (error as Error).message;
    // One already running copies data from before the erasure: another must follow it.
    if (/already in progress/i.test(message))
      return "not started: a rewrite was already running; erase again once it has finished";
    return `not started: ${message}`;
  }
}
