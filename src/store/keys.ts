import { hash } from "node:crypto";
import calculateSlot from "cluster-key-slot";
import { LRUCache } from "lru-cache";
import type { Channel } from "../domain/events.js";

/**
 * Every Redis key followups writes, built in one place. Ids chosen by publishers (event, order,
 * customer ids, phone numbers) go into keys only as a hash, so any id is safe in a key and no
 * readable identifier or contact detail appears in a key name.
 */

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** Recent ids' hashes: intake names an event's, customer's and order's keys a dozen times. */
const recentIdHashes = new LRUCache<string, string>({
  max: 4_096,
  // The one-shot hash: a third of createHash's cost.
  memoMethod: (id) => hash("sha256", id, "base64url").slice(0, 22),
});

/** 22 base64url characters (132 bits) of SHA-256: the key fragment for an id. */
export function idHash(id: string): string {
  return recentIdHashes.memo(id);
}

/** Buckets of a packed index (the address index, order links): 16,384, by 14 bits of a hash. */
const PACKED_BUCKET_BITS = 14;
/** How many buckets a packed index has. */
export const PACKED_BUCKETS = 1 << PACKED_BUCKET_BITS;
/** Characters of a base64url hash that its bucket's number already holds (its first 12 bits). */
const IN_BUCKET_NAME = 2;
/**
 * Characters of the hash after the first two that name an item in its bucket: 66 bits, 64 of them
 * beyond the bucket's 14, so that two of the few hundred items of a bucket share them with a
 * chance of about one in 10^17.
 */
export const PACKED_ENTRY_CHARS = 11;

/** Where an item is filed in a packed index: its bucket and the part of its entries naming it. */
export interface PackedPlace {
  readonly bucket: number;
  readonly entry: string;
}

/**
 * The place in a packed index of an item with this hash (base64url, at least 13 characters: an
 * address's keyed hash, an idHash): its bucket by the first 14 bits, and the next 11 characters,
 * which begin each of its entries there. A packed index keeps many items in one small hash
 * instead of a key each (a key costs about 100 bytes of Redis's bookkeeping beside its content).
 */
export function packedPlace(hash: string): PackedPlace {
  const bytes = Buffer.from(hash.slice(0, 4), "base64url");
  if (bytes.length < 3 || hash.length < IN_BUCKET_NAME + PACKED_ENTRY_CHARS)
    throw new RangeError("a packed index files items by a base64url hash of 13 characters or more");
  return {
    bucket:
      ((bytes[0] ?? 0) << (PACKED_BUCKET_BITS - 8)) |
      ((bytes[1] ?? 0) >> (16 - PACKED_BUCKET_BITS)),
    entry: hash.slice(IN_BUCKET_NAME, IN_BUCKET_NAME + PACKED_ENTRY_CHARS),
  };
}

/**
 * The entries of one item in its bucket of a packed index (the fields that begin with its
 * `entry`), each as what follows that part and its value.
 */
export function packedEntries(
  bucket: Readonly<Record<string, string>>,
  entry: string,
): [rest: string, value: string][] {
  return Object.entries(bucket).flatMap(([field, value]): [string, string][] =>
    field.length > entry.length && field.startsWith(entry)
      ? [[field.slice(entry.length), value]]
      : [],
  );
}

/** When a packed entry expires: the epoch ms its value ends with (lib/packed-index.lua). */
export function packedExpiry(value: string): number {
  return Number(/(\d+)$/.exec(value)?.[1] ?? 0);
}

/** The hour an instant falls in, as the ledger numbers hours (hours since the epoch). */
export function hourOf(epochMs: number): number {
  return Math.floor(epochMs / HOUR_MS);
}

/**
 * Width of one bucket of the compact schedule: steps are grouped by the ten minutes they fall due
 * in. Wider buckets share a key among more steps (a bucket key and its index entry take about
 * 200 bytes); the promoter then makes a step a job up to this much earlier than the horizon says.
 */
export const SCHEDULE_BUCKET_MS = 600_000;

/** The schedule bucket an instant falls in (ten-minute spans since the epoch). */
export function bucketOf(epochMs: number): number {
  return Math.floor(epochMs / SCHEDULE_BUCKET_MS);
}

/** Start (epoch ms) of the schedule bucket an instant falls in. */
export function bucketStart(epochMs: number): number {
  return bucketOf(epochMs) * SCHEDULE_BUCKET_MS;
}

/**
 * Whether the promoter may already have made a step due at `dueAt` a job: its bucket starts
 * within the horizon. Re-planning leaves such steps as they are.
 */
export function mayBePromoted(dueAt: number, now: number, horizonMs: number): boolean {
  return bucketStart(dueAt) <= now + horizonMs;
}

/** The UTC day an instant falls in, as the pending counts number days (days since the epoch). */
export function dayOf(epochMs: number): number {
  return Math.floor(epochMs / DAY_MS);
}

/**
 * Where a key lives. Every key carries a Redis Cluster hash tag, so that each script touches keys
 * of one slot:
 * - **shard** keys (`{<prefix>:<n>}:fu:…`) hold what belongs to customers and their purchases
 *   (records, histories, caps, the schedule, pending counts) and the shard's own ledger counts. A
 *   customer lives in one shard (`customerShard`), so everything a script changes about them is in
 *   one slot. FOLLOW_UP_SHARDS sets how many shards there are (default one, numbered 0).
 * - **global** keys (`{<prefix>.global}:fu:…`, globalTag) hold what is looked up without knowing the customer or is
 *   shared by all (rate limits, suppressions, orders, message references, discount codes,
 *   secrets, rules generations, the audit trail) and a ledger of their own for what those scripts
 *   count. No script touches global and shard keys together; readers of the ledger add up the
 *   global ledger and every shard's.
 */
export type KeySpace = "global" | "shard";

/** Hash slots of a Redis Cluster. */
const CLUSTER_SLOTS = 16_384;

/**
 * The hash tag of the queues but follow-ups on a Redis Cluster (`{<prefix>}`): the input queue
 * publishers write to, and the owners' report and alert queues.
 */
export function queueTag(prefix: string): string {
  return `{${prefix}}`;
}

/**
 * Where key layouts 2 to 5 (up to 4 December 2026) kept global keys: beside the input queue,
 * under its hash tag (`{<prefix>}:fu:`). The upgrade to layout 6 moves them (key-layout.ts).
 */
export function formerGlobalBase(prefix: string): string {
  return `${queueTag(prefix)}:fu:`;
}

const globalTags = new Map<string, string>();

/**
 * The hash tag of global keys (KeySpace): `{<prefix>.global}`, or `{<prefix>.global.k}` with the
 * smallest k whose slot is at least a third of the cluster's slots away from the input queue's
 * (queueTag) either way. Masters own contiguous slot ranges, and a cluster has three masters or
 * more, so with evenly split slots the global keys and the input queue, the two busiest slots of
 * intake, sit on different masters. (Versions before key layout 6 kept global keys beside the
 * input queue, under `{<prefix>}`.) A prefix holds no `.`, so no other deployment's tag is this.
 */
export function globalTag(prefix: string): string {
  let tag = globalTags.get(prefix);
  if (tag === undefined) {
    const input = calculateSlot(queueTag(prefix));
    for (let k = 0; ; k++) {
      const candidate = k === 0 ? `{${prefix}.global}` : `{${prefix}.global.${k}}`;
      const away = (calculateSlot(candidate) - input + CLUSTER_SLOTS) % CLUSTER_SLOTS;
      if (away >= CLUSTER_SLOTS / 3 && away <= CLUSTER_SLOTS - CLUSTER_SLOTS / 3) {
        tag = candidate;
        break;
      }
    }
    globalTags.set(prefix, tag);
  }
  return tag;
}

const spreadTags = new Map<string, readonly string[]>();

/**
 * The hash tag of a shard's keys (KeySpace), and on a Redis Cluster of its follow-ups queue.
 * Shard 0's is `{<prefix>:0}`. The others' are chosen so their slots are spread evenly over the
 * cluster's 16,384 (`{<prefix>:n}`, or `{<prefix>:n.k}` with the smallest k that lands in shard
 * n's share of the slots, counted from shard 0's): masters own contiguous slot ranges, so each
 * gets its share of shards. Names like `{followups:1}` … `{followups:15}` alone fall into four
 * narrow slot bands, which would leave masters of larger clusters with no shard at all.
 */
export function shardTag(prefix: string, shard: number, shards = 1): string {
  if (shard === 0) return `{${prefix}:0}`;
  const key = `${prefix}\n${shards}`;
  let tags = spreadTags.get(key);
  if (!tags) {
    tags = spreadShardTags(prefix, shards);
    spreadTags.set(key, tags);
  }
  const tag = tags[shard];
  if (tag === undefined) throw new RangeError(`shard ${shard} is not one of 0 to ${shards - 1}`);
  return tag;
}

function spreadShardTags(prefix: string, shards: number): string[] {
  const first = `{${prefix}:0}`;
  const origin = calculateSlot(first);
  const width = CLUSTER_SLOTS / shards;
  const tags = [first];
  for (let shard = 1; shard < shards; shard++) {
    for (let k = 0; ; k++) {
      const tag = k === 0 ? `{${prefix}:${shard}}` : `{${prefix}:${shard}.${k}}`;
      const offset = (calculateSlot(tag) - origin + CLUSTER_SLOTS) % CLUSTER_SLOTS;
      if (offset >= shard * width && offset < (shard + 1) * width) {
        tags.push(tag);
        break;
      }
    }
  }
  return tags;
}

/**
 * Which shard a store works on, of how many (FOLLOW_UP_SHARDS). A plain prefix is shard 0 of one.
 */
export interface KeyScope {
  readonly prefix: string;
  /** The shard whose keys the store reads and writes (0 to shards - 1). */
  readonly shard: number;
  /** How many shards the deployment has: readers of every shard (the ledger) add them all up. */
  readonly shards: number;
}

/** A store's scope: a QUEUE_PREFIX alone (shard 0 of one) or a shard of a sharded deployment. */
export type Scope = string | KeyScope;

/** The scope of a deployment's shard. */
export function shardScope(prefix: string, shard: number, shards: number): KeyScope {
  if (!Number.isInteger(shard) || shard < 0 || shard >= shards)
    throw new RangeError(`shard ${shard} is not one of 0 to ${shards - 1}`);
  return { prefix, shard, shards };
}

/** The QUEUE_PREFIX of a scope. */
export function prefixOf(scope: Scope): string {
  return typeof scope === "string" ? scope : scope.prefix;
}

/**
 * The shard a customer lives in, of `shards`: the first 32 bits of the SHA-256 of their id, modulo
 * the count. Everything about a customer and their purchases lives in that shard.
 */
export function customerShard(customerId: string, shards: number): number {
  if (shards <= 1) return 0;
  return hash("sha256", customerId, "buffer").readUInt32BE(0) % shards;
}

/** The key names of one deployment (one QUEUE_PREFIX), with shard keys of one shard. */
export class StoreKeys {
  readonly prefix: string;
  /** The shard whose keys the shard key builders name. */
  readonly shard: number;
  /** How many shards the deployment has. */
  readonly shards: number;
  /** Global keys (KeySpace). */
  private readonly global: string;
  /** Keys of this shard (KeySpace). */
  private readonly base: string;

  constructor(scope: Scope) {
    const { prefix, shard, shards } =
      typeof scope === "string" ? { prefix: scope, shard: 0, shards: 1 } : scope;
    this.prefix = prefix;
    this.shard = shard;
    this.shards = shards;
    this.global = `${globalTag(prefix)}:fu:`;
    this.base = `${shardTag(prefix, shard, shards)}:fu:`;
  }

  /** The same deployment's keys of another shard. */
  ofShard(shard: number): StoreKeys {
    return new StoreKeys(shardScope(this.prefix, shard, this.shards));
  }

  /**
   * The patterns (for SCAN MATCH) that every key of this deployment's store matches, global and
   * sharded. Prefixes are letters, digits, `_` and `-`, so nothing needs escaping.
   */
  patterns(): string[] {
    return [`${globalTag(this.prefix)}:fu:*`, `{${this.prefix}:*}:fu:*`];
  }

  /**
   * Hash of a purchase's step states, customer history count, summary, stop marker and the
   * purchase itself, encoded, in 64-byte fields (purchase-fields.ts).
   */
  eventRecord(eventId: string): string {
    return `${this.base}e:${idHash(eventId)}`;
  }

  /**
   * Where versions before 2026-12-03 kept the encoded purchase, beside its record: still read,
   * extended, trimmed and erased until it expires with the record.
   */
  purchase(eventId: string): string {
    return `${this.base}p:${idHash(eventId)}`;
  }

  /**
   * A customer's history: purchase count, last purchase time, their purchases (`e:<eventId>` =
   * `<purchase time>:<the order id's idHash>`), their phone numbers
   * (`ph:<member>`, keyed hashes), their discount codes (`dc:<hash>`) and their thank-you group
   * (`tl`, `tm:<eventId>`, …: store/thank-you-groups.ts).
   */
  customerHistory(customerId: string): string {
    return `${this.base}c:${idHash(customerId)}`;
  }

  /** The latest follow-up sent to the customer (for attributing their next purchase). */
  lastSent(customerId: string): string {
    return `${this.base}ls:${idHash(customerId)}`;
  }

  /**
   * How the customer's recent check-ins ended (sent, or skipped for consent, opt-out, caps or
   * budget), by purchase hash: for comparing repeat purchases (store/customer-history.ts).
   */
  checkIns(customerId: string): string {
    return `${this.base}ck:${idHash(customerId)}`;
  }

  /**
   * When the customer's purchases' steps fall due, per rule and per kind (for cooldowns), and
   * each rule's and kind's count of writes (remember-steps.lua).
   */
  recentSteps(customerId: string): string {
    return `${this.base}cs:${idHash(customerId)}`;
  }

  /**
   * Where key layout 4 and before kept the customer's thank-you group and how each purchase was
   * filed with it (store/thank-you-groups.ts, which reads it and moves its group into the
   * customer's history): read and erased until it expires.
   */
  thankYouGroup(customerId: string): string {
    return `${this.base}ty:${idHash(customerId)}`;
  }

  /** What a channel spent in one calendar month ("2026-12"), in micros of the default currency. */
  spendMonth(channel: Channel, month: string): string {
    return `${this.global}spend:${channel}:${month}`;
  }

  /** What each message of the month was charged, so a retried send is charged once. */
  spendCharges(channel: Channel, month: string): string {
    return `${this.global}spend:${channel}:${month}:charges`;
  }

  /** The budget alert thresholds the month's spend has crossed (each alerts once). */
  spendAlerts(channel: Channel, month: string): string {
    return `${this.global}spend:${channel}:${month}:alerts`;
  }

  /**
   * The fingerprint of the event an id named, for the whole deployment when customers are spread
   * over several shards (store/event-ids.ts DeploymentEventIds).
   */
  eventIdClaim(eventId: string): string {
    return `${this.global}id:${idHash(eventId)}`;
  }

  /**
   * An order's refunds, and its purchase events as versions of key layout 3 and before linked them (still
   * read, and rewritten by a reshard, until it expires).
   */
  order(orderId: string): string {
    return this.orderOfHash(idHash(orderId));
  }

  /** The same, by the idHash of the order id (what a customer's history notes of a purchase). */
  orderOfHash(orderHash: string): string {
    return `${this.global}o:${orderHash}`;
  }

  /**
   * One bucket of the order links (store/order-store.ts): the purchase events of every order
   * whose id's idHash starts with the bucket's 14 bits (packedPlace), 0 to 16383.
   */
  orderLinks(bucket: number): string {
    return `${this.global}ol:${bucket}`;
  }

  /** Set of suppressed customers and hashed addresses of a channel. */
  suppressions(channel: Channel): string {
    return `${this.global}suppressed:${channel}`;
  }

  /** Set of customers and hashed addresses who opted out of a channel's offers only. */
  marketingSuppressions(channel: Channel): string {
    return `${this.global}suppressed:${channel}:marketing`;
  }

  /** A customer's sends on a channel by time, for the frequency caps. */
  capWindow(channel: Channel, customerId: string): string {
    return `${this.base}sent:${channel}:${idHash(customerId)}`;
  }

  /**
   * Steps a final SMS status failed (Twilio's `canceled`, `failed`: nothing went out), by time,
   * `<eventId>/<stepId>`: `followups failed` lists them, as it lists failed jobs.
   */
  smsStatusFailures(): string {
    return `${this.base}smsfailed`;
  }

  /** The next free send slot of a channel (rate limit shared by every worker). */
  rateSlot(channel: Channel): string {
    return `${this.global}rate:${channel}`;
  }

  /** Which step an SMS (by provider message sid) was sent for. */
  smsMessage(sid: string): string {
    return `${this.global}sid:${sid}`;
  }

  /**
   * The charge id (its send's job id) of an SMS whose customer was erased while Twilio could still
   * report it `canceled` or `failed`, by the sid's idHash: what gives the charge back once the
   * message's reference (smsMessage) is gone. Nothing of the customer: no sid, event or number.
   */
  erasedSmsCharge(sid: string): string {
    return `${this.global}sidcharge:${idHash(sid)}`;
  }

  /**
   * Twilio's statuses of an SMS that came before its reference (smsMessage) was written, kept a
   * short while for the worker that writes it: sid, status, error code and time only.
   */
  earlySmsStatuses(sid: string): string {
    return `${this.global}sidearly:${sid}`;
  }

  /** Which step an email (by its Message-ID) was sent for: replies find their step by it. */
  emailMessage(messageId: string): string {
    return `${this.global}mid:${idHash(messageId.trim().toLowerCase())}`;
  }

  /** An issued discount code, by its normalised form (see domain normalizeCode). */
  discountCode(normalized: string): string {
    return this.discountCodeOfHash(idHash(normalized));
  }

  /** The same, by the idHash of the normalised code (discountCodeHash; what a step record keeps). */
  discountCodeOfHash(codeHash: string): string {
    return `${this.global}code:${codeHash}`;
  }

  /** The script of a voice call, by its follow-up id (kept for the call's lifetime). */
  callScript(followUpId: string): string {
    return `${this.global}call:${followUpId}`;
  }

  /**
   * Which follow-up a voice call (by its Twilio call sid) is bound to: a retry looking in
   * Twilio's Calls list for its earlier attempt's call passes over calls bound to others.
   */
  callBinding(callSid: string): string {
    return `${this.global}callsid:${callSid}`;
  }

  /**
   * The latest check-in sent to a phone number (by its suppression member, a keyed hash), where
   * its replies are filed.
   */
  latestCheckIn(member: string): string {
    return `${this.global}ci:${member}`;
  }

  /**
   * The same, as versions before 4 December 2026 named it: by an unkeyed hash of the number. Read
   * until those expire (SMS_REFERENCE_MS after their check-in), never written.
   */
  legacyLatestCheckIn(phone: string): string {
    return `${this.global}ci:${idHash(phone)}`;
  }

  /** Marks a number (by its suppression member, a keyed hash) as texted before. */
  textedNumber(member: string): string {
    return `${this.global}texted:${member}`;
  }

  /**
   * When a number (by its suppression member) last opted out by text or keypad (a sorted set:
   * `at` and `offers` epoch ms, `n` and `n-offers` how many were noted): a START replayed from the
   * webhook spool, sent before it, is not applied, nor a live one while an opt-out is handled.
   */
  phoneOptedOutAt(member: string): string {
    return `${this.global}optout-at:${member}`;
  }

  /** Set while a number (by its suppression member) has just had its opt-out confirmed. */
  optOutConfirmed(member: string): string {
    return `${this.global}optout-confirmed:${member}`;
  }

  /** Check-in replies by time received, for the owners' reports. */
  replies(): string {
    return `${this.global}replies`;
  }

  /** The shard's ledger counts of one hour (`hourOf`), by aggregate field. */
  ledgerHour(hour: number): string {
    return `${this.base}agg:${hour}`;
  }

  /** The global ledger's counts of one hour: what scripts on global keys count (KeySpace). */
  globalLedgerHour(hour: number): string {
    return `${this.global}agg:${hour}`;
  }

  /**
   * The local date (YYYY-MM-DD, exclusive) up to which the reports sent to an owner cover, by
   * their scheduler id (ownerSchedulerId: a digest of their address), so that each run covers
   * the days since the last report (store/report-marks.ts).
   */
  reportMark(ownerId: string): string {
    return `${this.global}report-mark:${ownerId}`;
  }

  /**
   * The token of the scheduled report run of an owner (by scheduler id) that is working out and
   * sending their report, while it does (store/report-marks.ts): one at a time.
   */
  reportMarkLease(ownerId: string): string {
    return `${this.global}report-mark:${ownerId}:lease`;
  }

  /** Every ledger, global and per shard, as the key of one of its hours: readers add them up. */
  ledgers(): readonly ((hour: number) => string)[] {
    const shards = Array.from({ length: this.shards }, (_, n) => this.ofShard(n));
    return [
      (hour) => this.globalLedgerHour(hour),
      ...shards.map((keys) => (hour: number) => keys.ledgerHour(hour)),
    ];
  }

  /**
   * Where the running workers' HTTP servers listen, for `followups demo` to name the console
   * actually served: a hash of address (`http://127.0.0.1:8080`) to until when it holds (epoch
   * ms), renewed by each worker while it runs (HTTP_ANNOUNCE_MS).
   */
  httpAddresses(): string {
    return `${this.global}http-addresses`;
  }

  /** How many shards the deployment was started with (FOLLOW_UP_SHARDS), set by its first worker. */
  shardCount(): string {
    return `${this.global}shards`;
  }

  /**
   * Set while `followups reshard` changes the shard count (operations/reshard.ts): from, to and
   * when it started. Workers and commands refuse to start while it is set.
   */
  reshardMark(): string {
    return `${this.global}reshard`;
  }

  /**
   * On the Redis a deployment moved away from (`followups migrate`, operations/migrate.ts): where
   * to and when. Workers and commands refuse to start on it for good.
   */
  movedMark(): string {
    return `${this.global}moved`;
  }

  /**
   * On the Redis a deployment is moving to, while `followups migrate` copies it: from where and
   * since when. Workers and commands refuse to start until the copy has finished.
   */
  arrivingMark(): string {
    return `${this.global}arriving`;
  }

  /**
   * Held by the one run of `followups reshard` or `followups migrate` that moves the deployment's
   * data (operations/move-lease.ts): which command, where and since when; renewed while it runs.
   */
  moveLease(): string {
    return `${this.global}move-lease`;
  }

  /**
   * Held by each operator command while it runs (store/operator-commands.ts): which process, where
   * and since when; renewed while it runs. `followups reshard` and `followups migrate` refuse to
   * begin while one is held.
   */
  operatorCommand(token: string): string {
    return `${this.global}command:${token}`;
  }

  /** The SCAN pattern every operator command's mark (operatorCommand) matches. */
  operatorCommands(): string {
    return `${this.global}command:*`;
  }

  /** Marks the key layout a deployment's Redis holds (store/key-layout.ts). */
  layoutVersion(): string {
    return `${this.global}layout`;
  }

  /** Held by the one worker that upgrades the key layout. */
  layoutLock(): string {
    return `${this.global}layout:lock`;
  }

  /** Pending steps due on one UTC day (`dayOf`), by channel. */
  pendingDay(day: number): string {
    return `${this.base}due:${day}`;
  }

  /**
   * Steps falling due in one bucket's span (`bucketOf`) that wait outside BullMQ: newline-separated
   * step references, appended as steps are scheduled (store/follow-up-schedule.ts).
   */
  scheduleBucket(bucket: number): string {
    return `${this.base}t:${bucket}`;
  }

  /** The non-empty schedule buckets, scored by the time they start: what the promoter reads. */
  scheduleIndex(): string {
    return `${this.base}t`;
  }

  /** Held by the one promoter that moves a bucket's steps into BullMQ, for a short lease. */
  scheduleLease(bucket: number): string {
    return `${this.base}t:${bucket}:lease`;
  }

  /**
   * Steps that are BullMQ jobs (or about to be), filed by the ten minutes (`bucketOf`) after which
   * to look whether their job still exists (store/job-watch.ts): the same references as
   * scheduleBucket's.
   */
  jobWatchBucket(bucket: number): string {
    return `${this.base}j:${bucket}`;
  }

  /** The non-empty job-watch buckets, scored by the time they start. */
  jobWatchIndex(): string {
    return `${this.base}j`;
  }

  /** Held by the one worker looking at a job-watch bucket, for a short lease. */
  jobWatchLease(bucket: number): string {
    return `${this.base}j:${bucket}:lease`;
  }

  /**
   * Whether the shard's purchase records were read for steps that became jobs before the job
   * watch (queue/job-watch-upgrade.ts): `done`, or `running` under the lease of the worker
   * reading them.
   */
  jobWatchUpgrade(): string {
    return `${this.base}jw`;
  }

  /** The SCAN pattern every purchase record of the shard (eventRecord) matches. */
  eventRecords(): string {
    return `${this.base}e:*`;
  }

  /**
   * Held for a margin by the one worker that queued a step again, or skipped it, after its job was
   * lost (JobWatch.markRequeued): a second look at the same step meanwhile (the step filed twice
   * in the watch, looked at by another worker in another bucket, maybe on the other side of its
   * grace end) neither queues, skips nor counts it again.
   */
  lostJobRequeue(eventId: string, stepId: string): string {
    return `${this.base}jq:${idHash(eventId)}:${stepId}`;
  }

  /**
   * The newest rules generation whose re-planning walk of this shard's schedule began
   * (FollowUpSchedule.beginWalk): a purchase filed in the schedule under an older one afterwards
   * is noted in replanLater, as the walk may have passed its bucket.
   */
  replanWalk(): string {
    return `${this.base}tg`;
  }

  /** Purchases (event ids) filed under older rules than the walk that began: re-planned soon. */
  replanLater(): string {
    return `${this.base}tq`;
  }

  /**
   * The failed re-plans of noted purchases (replanLater), by event id: how many failed, and when
   * the next may be tried (`<failures> <epoch ms>`).
   */
  replanLaterTries(): string {
    return `${this.base}tr`;
  }

  /** The latest rules generation a schedule bucket was fully re-planned for. */
  scheduleReplanned(bucket: number): string {
    return `${this.base}t:${bucket}:replanned`;
  }

  /**
   * One bucket of the address index (store/customer-index.ts): the customers of every address
   * whose keyed hash starts with the bucket's 14 bits, 0 to 16383.
   */
  addressBucket(bucket: number): string {
    return `${this.global}who:${bucket}`;
  }

  /**
   * The index of one address (by its suppression member, `h:<keyed hash>`) as versions of key
   * layout 3 and before kept it, a key per address: read and erased until moved into its bucket.
   */
  legacyAddressIndex(member: string): string {
    return `${this.global}who:${member}`;
  }

  /** Set once every address index of an earlier version has been moved into its bucket. */
  addressIndexPacked(): string {
    return `${this.global}who-packed`;
  }

  /**
   * Claimed by the one worker that sweeps the packed indexes' buckets of an hour (`hourOf`,
   * queue/packed-index-sweeper.ts); expires after two hours.
   */
  indexSweep(hour: number): string {
    return `${this.global}sweep:${hour}`;
  }

  /** The rules generation counter and the generation of every rules content hash seen. */
  rulesGenerations(): string {
    return `${this.global}rules`;
  }

  /** Operators' actions by time (store/audit-trail.ts), kept for a year. */
  auditTrail(): string {
    return `${this.global}audit`;
  }

  /**
   * When a customer (by keyed hash, SuppressionList.customerMember without its `k:`) was erased:
   * their events from before that are dropped.
   */
  erasedCustomer(customerHash: string): string {
    return `${this.base}x:${customerHash}`;
  }

  /**
   * The same erasure in the global slot, beside the address index: a purchase being taken in when
   * its customer is erased files no addresses nor order link after the erasure forgot them
   * (link-purchase.lua, remember-customer.lua).
   */
  erasedCustomerGlobal(customerHash: string): string {
    return `${this.global}x:${customerHash}`;
  }

  /** Unhappy replies (ids) waiting for an owner's alert email. */
  ownerAlerts(ownerId: string): string {
    return `${this.global}alerts:${ownerId}`;
  }

  /** When an owner's current alert window started. */
  ownerAlertState(ownerId: string): string {
    return `${this.global}alerts:${ownerId}:state`;
  }

  /**
   * Held by the one alert job that is sending an owner's pending alerts (its token), for a lease
   * that ends on its own if that worker dies (claim-alerts.lua).
   */
  ownerAlertLease(ownerId: string): string {
    return `${this.global}alerts:${ownerId}:lease`;
  }

  /** A console session (by the SHA-256 of its id): who signed in. */
  consoleSession(sessionHash: string): string {
    return `${this.global}console:${sessionHash}`;
  }

  /**
   * Where console sign-in attempts are counted (the prefix of a key per client address's keyed
   * hash, kept a minute; @fastify/rate-limit's Redis store).
   */
  consoleSignIns(): string {
    return `${this.global}console-sign-ins:`;
  }

  /** A provider webhook's message id, remembered to ignore replays. */
  webhookReceipt(receipt: string): string {
    return `${this.global}seen:${receipt}`;
  }

  /** A secret generated once per deployment when its variable is not set. */
  sharedSecret(name: string): string {
    return `${this.global}secret:${name}`;
  }
}

/** How often a worker renews its HTTP address (httpAddresses); it holds three times as long. */
export const HTTP_ANNOUNCE_MS = 30_000;
