import { MAX_SHARDS } from "../domain/shard-spec.js";
import { CustomerHistoryStore } from "./customer-history.js";
import { DeliveryLedger } from "./delivery-ledger.js";
import { EventIdRegistry } from "./event-ids.js";
import { FollowUpSchedule } from "./follow-up-schedule.js";
import { FollowUpStore } from "./follow-up-store.js";
import { FrequencyCapStore } from "./frequency-cap-store.js";
import { JobWatch } from "./job-watch.js";
import { customerShard, formerGlobalBase, StoreKeys, shardScope } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import type { ReplicaWait } from "./replica-wait.js";
import { StepReplies } from "./step-replies.js";
import { ThankYouGroups } from "./thank-you-groups.js";

/**
 * The stores of one shard (FOLLOW_UP_SHARDS): everything kept about its customers and their
 * purchases, its schedule and its ledger counts, all under the shard's hash tag.
 */
export interface ShardStores {
  readonly shard: number;
  readonly store: FollowUpStore;
  readonly schedule: FollowUpSchedule;
  /** The steps that are jobs, to find those whose job was lost (queue/lost-jobs.ts). */
  readonly jobWatch: JobWatch;
  readonly history: CustomerHistoryStore;
  readonly eventIds: EventIdRegistry;
  readonly replies: StepReplies;
  readonly thankYous: ThankYouGroups;
  readonly caps: FrequencyCapStore;
  readonly ledger: DeliveryLedger;
}

/**
 * Something per shard (its stores, its follow-ups queue, …), made on first use. A customer's shard
 * is `customerShard` of their id; an event's is its customer's, and is carried wherever the event is
 * referred to from outside its shard (jobs, message references, order links).
 */
export class Shards<T> {
  private readonly cache = new Map<number, T>();

  constructor(
    readonly count: number,
    private readonly make: (shard: number) => T,
  ) {
    if (!Number.isInteger(count) || count < 1 || count > MAX_SHARDS)
      throw new RangeError(`the shard count must be 1 to ${MAX_SHARDS}, got ${count}`);
  }

  /** Shard `shard`'s; a shard this deployment does not have is an error. */
  of(shard: number): T {
    if (!Number.isInteger(shard) || shard < 0 || shard >= this.count)
      throw new RangeError(`shard ${shard} is not one of 0 to ${this.count - 1}`);
    let made = this.cache.get(shard);
    if (made === undefined) {
      made = this.make(shard);
      this.cache.set(shard, made);
    }
    return made;
  }

  /** The shard a customer lives in. */
  shardOf(customerId: string): number {
    return customerShard(customerId, this.count);
  }

  /** The customer's shard's. */
  ofCustomer(customerId: string): T {
    return this.of(this.shardOf(customerId));
  }

  /** Every shard's, in shard order. */
  all(): T[] {
    return Array.from({ length: this.count }, (_, shard) => this.of(shard));
  }

  /** Those made so far (to close them, say), in shard order. */
  made(): T[] {
    return [...this.cache.entries()].sort(([a], [b]) => a - b).map(([, value]) => value);
  }

  /** The same shards with something else made per shard. */
  map<U>(make: (value: T, shard: number) => U): Shards<U> {
    return new Shards(this.count, (shard) => make(this.of(shard), shard));
  }
}

/** Every shard's stores on one connection. */
export function shardStores(
  redis: RedisClient,
  prefix: string,
  count: number,
  options: {
    replicaWait?: ReplicaWait;
    addressHashSecret?: string;
    recordRetentionMs?: number;
    /** Told when trimming a finished purchase failed after a step's change (FollowUpStore). */
    onTrimFailed?: (eventId: string, error: unknown) => void;
  } = {},
): Shards<ShardStores> {
  return new Shards(count, (shard) => {
    const scope = shardScope(prefix, shard, count);
    return {
      shard,
      store: new FollowUpStore(
        redis,
        scope,
        options.replicaWait,
        options.recordRetentionMs,
        options.onTrimFailed,
      ),
      schedule: new FollowUpSchedule(redis, scope),
      jobWatch: new JobWatch(redis, scope),
      history: new CustomerHistoryStore(redis, scope, {
        ...(options.addressHashSecret && { addressHashSecret: options.addressHashSecret }),
      }),
      eventIds: new EventIdRegistry(redis, scope),
      replies: new StepReplies(redis, scope),
      thankYous: new ThankYouGroups(redis, scope),
      caps: new FrequencyCapStore(redis, scope),
      ledger: new DeliveryLedger(redis, scope),
    };
  });
}

/**
 * The deployment's shard count: the one its first worker recorded, or 1 for a deployment that
 * has state from before shard counts were recorded (its rules generations or shard 0's schedule
 * exist: it ran with one shard), or undefined for a Redis no worker has used yet.
 */
export async function storedShardCount(
  redis: RedisClient,
  prefix: string,
): Promise<number | undefined> {
  const keys = new StoreKeys(prefix);
  const stored = await redis.get(keys.shardCount());
  if (stored !== null) return Number(stored);
  const [rules, schedule] = await Promise.all([
    redis.exists(keys.rulesGenerations()),
    redis.exists(keys.scheduleIndex()),
  ]);
  return rules + schedule > 0 ? 1 : undefined;
}

/**
 * Records the deployment's shard count (FOLLOW_UP_SHARDS) when none is recorded, and returns the
 * recorded one: a worker whose count differs must not start, because it would look for customers
 * in other shards than the one their state lives in. A deployment with state from before counts
 * were recorded had one shard, and is recorded so.
 */
export async function claimShardCount(
  redis: RedisClient,
  prefix: string,
  count: number,
): Promise<number> {
  const key = new StoreKeys(prefix).shardCount();
  const existing = await storedShardCount(redis, prefix);
  await redis.set(key, String(existing ?? count), "NX");
  return Number(await redis.get(key));
}

/** What the mark of a reshard under way says. */
export interface ReshardMark {
  readonly from: number;
  readonly to: number;
  readonly startedAt: string;
  /** A follow-ups queue was paused when it started: the new shards' queues are paused at the end. */
  readonly paused?: boolean;
}

/** The mark of a reshard under way, if one is. */
export async function reshardUnderWay(
  redis: RedisClient,
  prefix: string,
): Promise<ReshardMark | undefined> {
  const raw = await redis.get(new StoreKeys(prefix).reshardMark());
  return raw ? (JSON.parse(raw) as ReshardMark) : undefined;
}

/** The line workers and commands refuse to start with while a reshard is under way. */
export function reshardRefusal(mark: ReshardMark): string {
  return `a change of the shard count from ${mark.from} to ${mark.to} (followups reshard, started ${mark.startedAt}) has not finished: run "followups reshard --to ${mark.to}" again to finish it, then start workers with FOLLOW_UP_SHARDS=${mark.to}`;
}

/** What the marks of `followups migrate` say (StoreKeys.movedMark and arrivingMark). */
export interface MoveMark {
  /** The other Redis: its nodes, without credentials. */
  readonly redis: string;
  /** The other Redis's servers' run ids: a run named with other URLs still finds its move. */
  readonly runIds?: readonly string[];
  readonly startedAt: string;
  /** Set on the old Redis once every key and job was copied. */
  readonly finishedAt?: string;
}

/** The mark of `followups migrate` on this Redis, if any: moved away, or arriving. */
export async function moveMarks(
  redis: RedisClient,
  prefix: string,
): Promise<{ moved?: MoveMark; arriving?: MoveMark }> {
  const keys = new StoreKeys(prefix);
  // Also where versions before key layout 6 left them (a Redis a version of then moved away from,
  // which this version never upgrades: its workers refuse to start there).
  const former = formerGlobalBase(prefix);
  const [movedNow, arrivingNow, movedBefore, arrivingBefore] = await Promise.all([
    redis.get(keys.movedMark()),
    redis.get(keys.arrivingMark()),
    redis.get(`${former}moved`),
    redis.get(`${former}arriving`),
  ]);
  const moved = movedNow ?? movedBefore;
  const arriving = arrivingNow ?? arrivingBefore;
  return {
    ...(moved && { moved: JSON.parse(moved) as MoveMark }),
    ...(arriving && { arriving: JSON.parse(arriving) as MoveMark }),
  };
}

/**
 * Why workers and commands must not start on this Redis now, or undefined: a reshard under way,
 * a deployment that moved to another Redis, or one still arriving from another.
 */
export async function startRefusal(
  redis: RedisClient,
  prefix: string,
): Promise<string | undefined> {
  const [resharding, moving] = await Promise.all([
    reshardUnderWay(redis, prefix),
    moveRefusal(redis, prefix),
  ]);
  if (resharding) return reshardRefusal(resharding);
  return moving;
}

/**
 * Why nothing may be published to, changed on or read from this Redis's deployment, or undefined:
 * it moved to another Redis, or is still arriving from one (followups migrate). Unlike a reshard
 * under way (startRefusal), during which publishers may go on adding events for the workers.
 */
export async function moveRefusal(redis: RedisClient, prefix: string): Promise<string | undefined> {
  const { moved, arriving } = await moveMarks(redis, prefix);
  if (moved)
    return moved.finishedAt
      ? `this deployment moved to ${moved.redis} (followups migrate, ${moved.finishedAt}): point REDIS_URL and REDIS_CLUSTER at it`
      : `this deployment is moving to ${moved.redis} (followups migrate, started ${moved.startedAt}): run the command again to finish it, then point REDIS_URL and REDIS_CLUSTER at the new Redis`;
  if (arriving)
    return `this deployment is still being copied here from ${arriving.redis} (followups migrate, started ${arriving.startedAt}): run "followups migrate" against the old Redis again to finish it`;
  return undefined;
}
