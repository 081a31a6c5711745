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

export class ReplicaWait {
  constructor(
    private readonly redis: RedisClient,
    private readonly settings: ReplicaWaitSettings,
    /** Told when fewer replicas than wanted confirmed within the timeout. */
    private readonly onShort: (confirmed: number, wanted: number) => void = () => {},
  ) {}

  /**
   * Waits until the wanted replicas have every write made so far on the connection to the node
   * that holds `key` (on a Redis Cluster, WAIT goes along with a read of the key, so it reaches
   * that node). Returns how many replicas confirmed.
   */
  async after(key: string): Promise<number> {
    const { replicas, timeoutMs } = this.settings;
    if (replicas <= 0) return 0;
    let confirmed: number;
    if (isCluster(this.redis)) {
      const replies = await this.redis.pipeline().exists(key).wait(replicas, timeoutMs).exec();
      const [error, value] = replies?.[1] ?? [new Error("WAIT got no reply"), 0];
      if (error) throw error;
      confirmed = Number(value);
    } else {
      confirmed = await this.redis.wait(replicas, timeoutMs);
    }
    if (confirmed < replicas) this.onShort(confirmed, replicas);
    return confirmed;
  }
}
