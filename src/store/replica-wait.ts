import { AsyncLocalStorage } from "node:async_hooks";
import calculateSlot from "cluster-key-slot";
import { isCluster, type RedisClient } from "./redis-client.js";

/**
 * Redis replicates asynchronously: a write the master acknowledged can vanish when a replica
 * takes over before it arrived. For the writes that must survive a failover (a purchase's
 * scheduled steps, an opt-out, a step's sent state) the worker can wait until replicas have them
 * (`REDIS_WAIT_REPLICAS`, Redis's WAIT), before it tells anyone the write happened (the event's
 * job completes, the send is acknowledged). Off (0) by default: one more round trip and the
 * replication delay on each of those writes.
 */
export interface ReplicaWaitSettings {
  /** Replicas that must have the write; 0 waits for none. */
  readonly replicas: number;
  /** The longest wait; after it the write stands on the master alone (reported). */
  readonly timeoutMs: number;
}

/** A write that stands on the master with fewer replicas than wanted. */
export interface ShortWait {
  /** Replicas that confirmed it (0 when it was not waited for). */
  readonly confirmed: number;
  readonly wanted: number;
  /** Whether the worker waited for it (false: its node had no replica at the last wait). */
  readonly waited: boolean;
  /**
   * Set on a wait that ended short: for this long the writes on that node wait only for the
   * replicas that confirmed it, none when none did, so that a master with fewer replicas than
   * wanted does not hold up the connection a whole timeout per write.
   */
  readonly pauseMs?: number;
  /**
   * Set on a write waited for during such a pause: the replicas it waited for (fewer than
   * wanted, as many as confirmed the wait that ended short).
   */
  readonly waitedFor?: number;
}

/**
 * After a wait that fewer replicas than wanted confirmed, how long the writes on that node wait
 * only for the replicas that did (none, unwaited, when none did). WAIT blocks the connection it
 * is sent on, and everything else the worker sends on it queues behind: with a master whose
 * replica is down (or not yet attached after a failover), or with fewer replicas than
 * REDIS_WAIT_REPLICAS, waiting for the missing ones on every write slowed the worker to one
 * protected write per timeout, though waiting for them gained nothing.
 */
export const NO_REPLICA_PAUSE_MS = 10_000;

/** The end (performance.now()) of the replica waits of the work under way, if it has one. */
const waitsEnd = new AsyncLocalStorage<number>();

/**
 * Runs `work` with all its replica waits ending within `ms` of now, however long
 * REDIS_WAIT_TIMEOUT_MS: for work someone is answered about within a time (a webhook, an
 * unsubscribe link), which would fail after its write were a wait to outlast that time. Its
 * stores are shared with the jobs and reached deep in; the bound goes with the work instead of
 * through every call. A wait cut short that no replica confirmed is reported as any other.
 */
export function replicaWaitsWithin<R>(ms: number, work: () => Promise<R>): Promise<R> {
  return waitsEnd.run(performance.now() + ms, work);
}

/** A node's pause after a short wait: until when, and how many replicas its writes wait for. */
interface Pause {
  readonly until: number;
  readonly replicas: number;
}

export class ReplicaWait {
  /** By node (a cluster master's address; "" for a single Redis): its pause after a short wait. */
  private readonly paused = new Map<string, Pause>();
  /** By node: the wait under way, which writes arriving meanwhile learn from. */
  private readonly waiting = new Map<string, Promise<number>>();

  constructor(
    private readonly redis: RedisClient,
    private readonly settings: ReplicaWaitSettings,
    /** Told of every write that fewer replicas than wanted confirmed, waited for or not. */
    private readonly onShort: (short: ShortWait) => void = () => {},
    /** A monotonic clock (ms): a wall clock set back would stretch a pause. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Waits until the wanted replicas have every write made so far on the connection to the node
   * that holds `key` (on a Redis Cluster, WAIT goes along with a read of the key, so it reaches
   * that node). Returns how many replicas confirmed. After a wait that fewer confirmed, for
   * NO_REPLICA_PAUSE_MS the node's writes wait only for as many as did: 0 without waiting when
   * none did. A write that arrives while a wait on its node is under way waits for that one
   * first: if it found no replica, the write is not waited for either (WAITs on one connection
   * run one after another, each its whole timeout).
   */
  async after(key: string): Promise<number> {
    const wanted = this.settings.replicas;
    if (wanted <= 0) return 0;
    const node = this.nodeOf(key);
    const underWay = this.waiting.get(node);
    if (underWay && (await underWay.catch(() => undefined)) === 0) return this.unwaited();
    const pause = this.paused.get(node);
    const during = pause !== undefined && this.now() < pause.until ? pause : undefined;
    if (during?.replicas === 0) return this.unwaited();
    const replicas = during?.replicas ?? wanted;
    const timeoutMs = this.timeoutNow();
    // No time left for the work under way: the write stands on the master alone, unwaited.
    if (timeoutMs < 1) return this.unwaited();
    const wait = this.waitFor(key, replicas, timeoutMs);
    this.waiting.set(node, wait);
    let confirmed: number;
    try {
      confirmed = await wait;
    } finally {
      if (this.waiting.get(node) === wait) this.waiting.delete(node);
    }
    if (confirmed >= wanted) {
      this.paused.delete(node);
      return confirmed;
    }
    if (during && confirmed >= replicas) {
      // As many as confirmed the short wait still do: counted; logged once, with the pause.
      this.onShort({ confirmed, wanted, waited: true, waitedFor: replicas });
      return confirmed;
    }
    this.paused.set(node, { until: this.now() + NO_REPLICA_PAUSE_MS, replicas: confirmed });
    this.onShort({ confirmed, wanted, waited: true, pauseMs: NO_REPLICA_PAUSE_MS });
    return confirmed;
  }

  private unwaited(): number {
    this.onShort({ confirmed: 0, wanted: this.settings.replicas, waited: false });
    return 0;
  }

  /** REDIS_WAIT_TIMEOUT_MS, or less within `replicaWaitsWithin` (whole ms; WAIT 0 never ends). */
  private timeoutNow(): number {
    const end = waitsEnd.getStore();
    if (end === undefined) return this.settings.timeoutMs;
    return Math.min(this.settings.timeoutMs, Math.floor(end - performance.now()));
  }

  private async waitFor(key: string, replicas: number, timeoutMs: number): Promise<number> {
    if (!isCluster(this.redis)) return this.redis.wait(replicas, timeoutMs);
    const replies = await this.redis.pipeline().exists(key).wait(replicas, timeoutMs).exec();
    const [error, value] = replies?.[1] ?? [new Error("WAIT got no reply"), 0];
    if (error) throw error;
    return Number(value);
  }

  /**
   * The node a key's write went to: on a cluster, the master serving its slot as the client
   * knows it (several shards' tags may live on one master, one connection); "" on one Redis.
   */
  private nodeOf(key: string): string {
    if (!isCluster(this.redis)) return "";
    const slot = calculateSlot(key);
    return this.redis.slots[slot]?.[0] ?? `slot ${slot}`;
  }
}
