import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/**
 * Pending alerts are kept this long beyond their window if no alert job ever sends them (Redis
 * lost the job): a bundled reply waits for its window's end, however long the window.
 */
const PENDING_MS = 7 * 86_400_000;

/**
 * Unhappy replies waiting to reach an owner: a list of reply ids per owner, and when the owner's
 * current alert window started. The first alert of a window goes at once; later ones wait for the
 * window's end and go together (queue-alert.lua decides, atomically for every worker). One alert
 * job at a time sends an owner's pending replies, under a lease (claim-alerts.lua), and removes
 * exactly those it sent (finish-alerts.lua).
 */
export class OwnerAlertQueue {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, prefix: string) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /** Files the reply; when the owner's alert email should go out (epoch ms) and whether it is now. */
  async file(
    ownerId: string,
    replyId: string,
    now: number,
    windowMs: number,
  ): Promise<{ sendAt: number; bundled: boolean }> {
    const [bundled, sendAt] = await this.redis.fuQueueAlert(
      this.keys.ownerAlerts(ownerId),
      this.keys.ownerAlertState(ownerId),
      replyId,
      now,
      windowMs,
      windowMs + PENDING_MS,
    );
    return { sendAt, bundled: bundled === 1 };
  }

  /** The reply ids waiting for the owner, oldest first. */
  async pending(ownerId: string): Promise<string[]> {
    return this.redis.lrange(this.keys.ownerAlerts(ownerId), 0, -1);
  }

  /**
   * Takes the owner's alert lease for `leaseMs` (it ends on its own if this worker dies): the
   * reply ids to send, or how long another job still holds it (ms).
   */
  async claim(
    ownerId: string,
    token: string,
    leaseMs: number,
  ): Promise<{ claimed: true; replyIds: string[] } | { claimed: false; heldForMs: number }> {
    const reply = await this.redis.fuClaimAlerts(
      this.keys.ownerAlerts(ownerId),
      this.keys.ownerAlertLease(ownerId),
      token,
      leaseMs,
    );
    return reply[0] === 1
      ? { claimed: true, replyIds: reply[1] }
      : { claimed: false, heldForMs: reply[1] };
  }

  /**
   * Forgets exactly these pending replies (their email went out, or they are gone) and gives up
   * the lease; false when the lease had run out and passed on meanwhile.
   */
  async finish(ownerId: string, token: string, replyIds: readonly string[]): Promise<boolean> {
    const released = await this.redis.fuFinishAlerts(
      this.keys.ownerAlerts(ownerId),
      this.keys.ownerAlertLease(ownerId),
      token,
      ...replyIds,
    );
    return released === 1;
  }
}
